import { MessageChannel, type Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { compiledThreadUrl } from '../../src/util/thread-url.js';
import { endSpareThreads, keepSpareThreads, restockSpareThreads, spareThreads, startThread, wantSpareThreads } from '../../src/util/spare-threads.js';

// A thread module that answers with its thread id and twice the value it was given (threads run
// compiled code: it imports the built spare-threads.js).
const built = compiledThreadUrl(new URL('../../src/util/spare-threads.ts', import.meta.url).href, 'spare-threads.js', 'ETEST');
const echo = (tag: string): URL => new URL(`data:text/javascript,${encodeURIComponent(`// ${tag}
import { parentPort, threadId } from 'node:worker_threads';
import { threadData } from '${built.href}';
const data = await threadData();
parentPort.postMessage({ threadId, doubled: data.value * 2 });
data.port?.postMessage('through the transferred port');
data.port?.close();`)}`);
const url = echo('kept spare');

function answer(worker: Worker): Promise<{ threadId: number; doubled: number }> {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

describe('spare threads', () => {
  it('hands out a thread started ahead, with its data and transferred ports, and restocks only when told', async () => {
    keepSpareThreads(url, 2);
    expect(spareThreads(url)).toBe(2);
    const channel = new MessageChannel();
    const viaPort = new Promise((resolve) => channel.port1.once('message', resolve));
    const worker = startThread(url, { value: 21, port: channel.port2 }, [channel.port2]);
    const exited = new Promise((resolve) => worker.once('exit', resolve)); // before it can happen
    expect(spareThreads(url)).toBe(1);
    const id = worker.threadId; // -1 once it has exited
    const got = await answer(worker);
    expect(got).toEqual({ threadId: id, doubled: 42 });
    expect(await viaPort).toBe('through the transferred port');
    channel.port1.close();
    await exited;

    wantSpareThreads(url, 2); // no more than before: nothing starts
    expect(spareThreads(url)).toBe(1);
    restockSpareThreads(url);
    expect(spareThreads(url)).toBe(2);
  });

  it('starts a thread of its own when no spare is idle, with the data as workerData', async () => {
    const other = echo('no spares wanted');
    expect(spareThreads(other)).toBe(0);
    const worker = startThread(other, { value: 5 });
    const id = worker.threadId;
    expect(await answer(worker)).toEqual({ threadId: id, doubled: 10 });
  });

  // Last: it ends spares for the whole process (a worker winding down).
  it('once ended, the idle spares end and none start again', async () => {
    const ending = echo('ended');
    keepSpareThreads(ending, 2);
    expect(spareThreads(ending)).toBe(2);
    endSpareThreads();
    expect(spareThreads(ending)).toBe(0);
    restockSpareThreads(ending);
    keepSpareThreads(ending, 3);
    expect(spareThreads(ending)).toBe(0);
    // A thread asked for by name still starts: only spares stop.
    const worker = startThread(ending, { value: 1 });
    expect((await answer(worker)).doubled).toBe(2);
    await worker.terminate();
  });
});
