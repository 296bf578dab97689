/** The trace recorder: frames in first-read order, merged; the blobs it wraps behave as before. */
import { describe, expect, it } from 'vitest';
import type { CachedBlob } from '../cache/types.js';
import { TraceRecorder } from './startup-trace.js';

const FRAME = 4096;

function fakeBlob(calls: unknown[][]): CachedBlob {
  return {
    blobId: 'b', size: 10 * FRAME, dataPath: '/nonexistent', toc: { frameSize: FRAME } as CachedBlob['toc'],
    read: (...args: unknown[]) => { calls.push(['read', ...args]); return Promise.resolve(Buffer.alloc(0)); },
    ensure: (...args: unknown[]) => { calls.push(['ensure', ...args]); return Promise.resolve(); },
    readElsewhere: (...args: unknown[]) => { calls.push(['readElsewhere', ...args]); },
  } as unknown as CachedBlob;
}

describe('TraceRecorder', () => {
  it('passes every argument on (ensure keeps its { durable: false }) and records first reads in order, merged', async () => {
    const calls: unknown[][] = [];
    let now = 0;
    const recorder = new TraceRecorder([fakeBlob(calls)], 10, () => now);
    const [blob] = recorder.wrap();
    await blob!.ensure(5 * FRAME, FRAME, { durable: false });
    await blob!.read(6 * FRAME, 10);
    blob!.readElsewhere?.(0, FRAME);
    await blob!.read(5 * FRAME, FRAME); // seen already
    now = 11_000; // the window closed
    await blob!.read(9 * FRAME, FRAME);
    expect(calls[0]).toEqual(['ensure', 5 * FRAME, FRAME, { durable: false }]);
    const trace = recorder.trace('sha256:m', ['sha256:b']);
    expect(trace.ranges).toEqual([{ blob: 'sha256:b', offset: 5 * FRAME, length: 2 * FRAME }, { blob: 'sha256:b', offset: 0, length: FRAME }]);
  });
});
