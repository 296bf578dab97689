/**
 * The kernel matches a fanotify response by the event's fd number alone. A restarted worker answers
 * the events its predecessor left (journal) by their numbers, so while one waits for its fill no new
 * event may get its number — even when the number was in use in the process at the restart (a module
 * being loaded) and is freed right after: a new event with it would have its journal slot overwritten,
 * and the first answer for that number would let the old event's reader see the holes of its range.
 * The group's holder, once its daemon is gone, answers what the dead worker left before it reads
 * events of its own (whose numbers would meet the old ones).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { createPreContentGroup, markPreAccess } from '../../src/native/fanotify.js';
import { F_GETFL, F_SETFL, O_NONBLOCK, fcntl } from '../../src/fuse/reader-libc.js';
import { fileKey, parseEvents } from '../../src/native/fanotify-events.js';
import { fanotifyJournalPath } from '../../src/daemon/fanotify-holder.js';
import { EventJournal } from '../../src/transport/fanotify/journal.js';
import { FanotifyServer } from '../../src/transport/fanotify/server.js';
import type { CachedBlob } from '../../src/cache/types.js';

function preContentGroup(): number | string {
  try {
    const fd = createPreContentGroup();
    closeSync(fd);
    return fd;
  } catch (err) {
    return (err as Error).message;
  }
}

const probe = isRoot ? preContentGroup() : 'not root';
const ready = needs('fanotify event numbers', [isRoot, 'root'], [typeof probe === 'number', `a fanotify pre-content group (${String(probe)})`]);
const SIZE = 1 << 20;
const HOLDER = join(import.meta.dirname, '../../dist/src/daemon/fanotify-holder-main.js');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!ready)('fanotify: the numbers of events a dead worker left', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeAll(() => { tmp = makeTempDir('fan-numbers'); });
  afterAll(() => tmp.remove());

  it('go to no new event until answered, even when in use at the restart and freed after', async () => {
    const dataPath = join(tmp.dir, 'data');
    writeFileSync(dataPath, randomBytes(SIZE));
    const group = createPreContentGroup();
    markPreAccess(group, dataPath);
    const st = statSync(dataPath, { bigint: true });
    const file = fileKey(st.dev, st.ino);

    // The dead worker's events: their numbers are in use here at the restart (the lowest free ones,
    // as many as the numbers the spawn of the reader below may take and give back).
    const inUse = Array.from({ length: 32 }, () => openSync('/dev/null', 'r'));
    const journalPath = join(tmp.dir, 'journal');
    const old = inUse.map((fd) => ({ fd, pid: 1, offset: 0, count: 4096, ranged: true, file }));
    const before = EventJournal.open(journalPath);
    for (const ev of old) before.record(ev);
    before.close();

    let openGate = (): void => undefined;
    const gate = new Promise<void>((r) => { openGate = r; });
    const blob = {
      blobId: 'numbers', size: SIZE, dataPath, toc: { frameSize: 65536 }, isComplete: () => false,
      ensure: async () => gate,
    } as unknown as CachedBlob;

    const server = new FanotifyServer(group, EventJournal.open(journalPath), false);
    server.register(blob, 'numbers');
    const started = server.start();
    await sleep(500); // the event thread is up and reading
    for (const fd of inUse) closeSync(fd);

    const reader = spawn('dd', [`if=${dataPath}`, 'of=/dev/null', 'bs=4096', 'skip=128', 'count=1'], { stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => reader.on('exit', (code) => r(code)));
    try {
      const journal = EventJournal.open(journalPath);
      let entries = journal.entries();
      for (const end = Date.now() + 10_000; Date.now() < end && !entries.some((e) => e.offset !== 0); await sleep(20)) entries = journal.entries();
      journal.close();
      // The new event is recorded in a slot of its own; the old ones' slots are intact.
      expect(entries.filter((e) => e.offset === 0)).toEqual(old);
      expect(entries.filter((e) => e.offset !== 0).map((e) => inUse.includes(e.fd) ? 'an old number' : e.offset)).toEqual([128 * 4096]);
    } finally {
      openGate();
    }
    expect(await exited).toBe(0);
    await started;
    expect(server.stats()).toMatchObject({ events: 1, denied: 0 });
    await server.stop();
  }, 30_000);

  it("are denied by the group's holder once the daemon is gone: their readers get EIO, not a wait", async () => {
    const runDir = join(tmp.dir, 'run');
    const dataPath = join(tmp.dir, 'holder-data');
    writeFileSync(dataPath, randomBytes(SIZE));
    mkdirSync(runDir);
    const group = createPreContentGroup();
    fcntl(group, F_SETFL, fcntl(group, F_GETFL) | O_NONBLOCK);
    markPreAccess(group, dataPath);
    let holder: ReturnType<typeof spawn> | undefined;
    const reader = spawn('dd', [`if=${dataPath}`, 'of=/dev/null', 'bs=4096', 'count=1'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    reader.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<number | null>((r) => reader.on('exit', (code) => r(code)));
    try {
      // A worker that read the event, journaled it and died: the event stays pending under its number.
      const buf = Buffer.alloc(4096);
      let n = 0;
      for (const end = Date.now() + 10_000; n <= 0 && Date.now() < end; await sleep(10)) {
        try {
          n = readSync(group, buf, 0, buf.length, null);
        } catch {
          // EAGAIN: the reader has not read yet
        }
      }
      const [ev] = parseEvents(buf, n);
      expect(ev).toBeDefined();
      const journal = EventJournal.open(fanotifyJournalPath(runDir));
      journal.record({ ...ev!, file: 'dead-worker' });
      journal.close();
      closeSync(ev!.fd);
      // No daemon runs in runDir: the holder is alone at once.
      holder = spawn(process.execPath, [HOLDER, runDir], { stdio: ['ignore', 'ignore', 'ignore', group] });
      const code = await Promise.race([exited, sleep(10_000).then(() => 'waiting')]);
      expect(code).not.toBe('waiting');
      expect(code).not.toBe(0);
      expect(stderr).toMatch(/Input\/output error/);
      // Nothing in the journal is pending any more: the next daemon must not answer those numbers.
      const journal2 = EventJournal.open(fanotifyJournalPath(runDir));
      for (const end = Date.now() + 5_000; journal2.entries().length > 0 && Date.now() < end;) await sleep(20);
      expect(journal2.entries()).toEqual([]);
      journal2.close();
    } finally {
      reader.kill('SIGKILL');
      holder?.kill('SIGTERM');
      closeSync(group);
    }
  }, 30_000);
});
