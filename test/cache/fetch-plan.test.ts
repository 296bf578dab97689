/** The fetch plan alone: which frames a read fetches, in which requests. No cache, no I/O. */
import { describe, expect, it } from 'vitest';
import {
  MAX_STREAMS, missingSteps, planRead, runEnd, storedBytes, type PlanInput, type PlanStep, type ReadStream, type StoredFrame,
} from '../../src/cache/fetch-plan.js';

/** `count` frames stored back to back, each `size` bytes (the last one `lastSize` if given). */
function layout(count: number, size = 1000, lastSize = size): StoredFrame[] {
  const frames: StoredFrame[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const compressedSize = i === count - 1 ? lastSize : size;
    frames.push({ compressedOffset: at, compressedSize });
    at += compressedSize;
  }
  return frames;
}

/** A blob's frame states the test sets by hand; planned fetches go in flight as a real read's would. */
class Blob {
  readonly present = new Set<number>();
  readonly inFlight = new Set<number>();
  streams: readonly ReadStream[] = [];
  readonly input: PlanInput & { readAheadFrames: number; readAheadJobBytes: number };

  constructor(frames: StoredFrame[], readAheadFrames: number, maxMergeBytes = 1e9, readAheadJobBytes = 1e9) {
    this.input = {
      frames,
      states: { present: (i) => this.present.has(i), inFlight: (i) => this.inFlight.has(i) },
      maxMergeBytes,
      readAheadFrames,
      readAheadJobBytes,
    };
  }

  /** Plans a read of frames first..last, starts its fetches, returns the fetched spans: its own, then read-ahead. */
  read(first: number, last = first): [number, number][] {
    const plan = planRead(this.input, this.streams, first, last);
    this.streams = plan.streams;
    return [...fetches(plan.steps), ...fetches(plan.ahead)].map(([a, b]) => {
      for (let i = a; i <= b; i++) this.inFlight.add(i);
      return [a, b];
    });
  }

  /** Every frame in flight arrives. */
  land(): void {
    for (const i of this.inFlight) this.present.add(i);
    this.inFlight.clear();
  }
}

const fetches = (steps: PlanStep[]): [number, number][] =>
  steps.flatMap((s): [number, number][] => (s.kind === 'fetch' ? [[s.first, s.last]] : []));

describe('fetch plan: reads', () => {
  it('an isolated miss fetches just its frames and starts a stream after them', () => {
    const blob = new Blob(layout(64), 4);
    expect(blob.read(10)).toEqual([[10, 10]]);
    expect(blob.read(30, 31)).toEqual([[30, 31]]);
    expect(blob.streams).toEqual([{ next: 11, window: 0, trigger: 11 }, { next: 32, window: 0, trigger: 32 }]);
  });

  it('a read continuing a stream starts a read-ahead of its own after it: 1 frame, then doubling up to readAheadFrames', () => {
    const blob = new Blob(layout(64), 4);
    blob.read(10);
    blob.land();
    // The reader's frame alone, the read-ahead in a request of its own (nobody waits for it yet).
    expect(blob.read(11)).toEqual([[11, 11], [12, 12]]);
    blob.land();
    // Frame 12 is present: a hit for the cache, but it is the stream's trigger: the next read-ahead starts.
    expect(blob.read(12)).toEqual([[13, 14]]);
    blob.land();
    expect(blob.read(13)).toEqual([[15, 18]]);
    expect(blob.read(14)).toEqual([]); // inside the window, not at its trigger
    blob.land();
    expect(blob.read(15)).toEqual([[19, 22]]); // stays at readAheadFrames
    expect(blob.streams).toEqual([{ next: 23, window: 4, trigger: 19 }]);
  });

  it('a reader that overtook its read-ahead (a read at the stream\'s end) fetches its own frame and goes on', () => {
    const blob = new Blob(layout(64), 4);
    blob.streams = [{ next: 20, window: 2, trigger: 18 }];
    expect(blob.read(20)).toEqual([[20, 20], [21, 24]]);
    expect(blob.streams).toEqual([{ next: 25, window: 4, trigger: 21 }]);
  });

  it('read-ahead is cut into requests of at most readAheadJobBytes, which run side by side', () => {
    const blob = new Blob(layout(64), 8, 1e9, 2000);
    blob.streams = [{ next: 5, window: 4, trigger: 5 }];
    expect(blob.read(5)).toEqual([[5, 5], [6, 7], [8, 9], [10, 11], [12, 13]]);
  });

  it('another read of a frame still in flight joins its job: no read-ahead, no new stream', () => {
    const blob = new Blob(layout(64), 4);
    blob.read(10);
    const before = blob.streams;
    const plan = planRead(blob.input, blob.streams, 10, 10);
    expect(plan.steps).toEqual([{ kind: 'join', frame: 10 }]);
    expect(plan.ahead).toEqual([]);
    expect(plan.streams).toBe(before);
  });

  it('frames present or in flight split a read: missing runs fetched, in-flight frames joined, in order', () => {
    const blob = new Blob(layout(16), 0);
    blob.present.add(1);
    blob.inFlight.add(3);
    blob.present.add(6);
    const plan = planRead(blob.input, [], 0, 7);
    expect(plan.steps).toEqual([
      { kind: 'fetch', first: 0, last: 0 },
      { kind: 'fetch', first: 2, last: 2 },
      { kind: 'join', frame: 3 },
      { kind: 'fetch', first: 4, last: 5 },
      { kind: 'fetch', first: 7, last: 7 },
    ]);
  });

  it('read-ahead skips frames already present or in flight', () => {
    const blob = new Blob(layout(64), 8);
    blob.streams = [{ next: 5, window: 4, trigger: 3 }];
    blob.inFlight.add(8);
    expect(blob.read(5)).toEqual([[5, 5], [6, 7], [9, 13]]);
    expect(blob.streams).toEqual([{ next: 14, window: 8, trigger: 6 }]);
  });

  it('a continuing read whose own frames are all there still starts its read-ahead', () => {
    const blob = new Blob(layout(64), 2);
    blob.streams = [{ next: 5, window: 1, trigger: 4 }];
    blob.inFlight.add(5);
    const plan = planRead(blob.input, blob.streams, 5, 5);
    expect(plan.steps).toEqual([{ kind: 'join', frame: 5 }]);
    expect(plan.ahead).toEqual([{ kind: 'fetch', first: 6, last: 7 }]);
    expect(plan.streams).toEqual([{ next: 8, window: 2, trigger: 6 }]);
  });

  it('two files read side by side each keep their own stream', () => {
    const blob = new Blob(layout(64), 3);
    const fetched: [number, number][] = [];
    for (let i = 0; i < 8; i++) {
      for (const frame of [i, 32 + i]) {
        fetched.push(...blob.read(frame));
        blob.land();
      }
    }
    expect(fetched).toEqual([
      [0, 0], [32, 32], [1, 1], [2, 2], [33, 33], [34, 34], [3, 4], [35, 36], [5, 7], [37, 39], [8, 10], [40, 42],
    ]);
    expect(blob.streams).toEqual([{ next: 11, window: 3, trigger: 8 }, { next: 43, window: 3, trigger: 40 }]);
  });

  it('keeps the newest MAX_STREAMS streams', () => {
    const blob = new Blob(layout(100), 2);
    for (let k = 0; k <= MAX_STREAMS; k++) blob.read(k * 10);
    expect(blob.streams).toHaveLength(MAX_STREAMS);
    expect(blob.streams[0]).toEqual({ next: 11, window: 0, trigger: 11 });
    // The dropped stream (after frame 0) is no longer followed: frame 1 is an isolated miss.
    expect(blob.read(1)).toEqual([[1, 1]]);
  });

  it('read-ahead ends at the last frame; a short last frame merges like any other', () => {
    const blob = new Blob(layout(10, 1000, 17), 4);
    blob.streams = [{ next: 8, window: 2, trigger: 7 }];
    expect(blob.read(7)).toEqual([[7, 7], [8, 9]]);
    expect(blob.streams).toEqual([{ next: 10, window: 4, trigger: 8 }]);
    blob.land();
    expect(blob.read(8)).toEqual([]);
    expect(storedBytes(blob.input.frames, 8, 9)).toBe(1017);
  });

  it('readAheadFrames 0 follows streams without read-ahead', () => {
    const blob = new Blob(layout(64), 0);
    blob.read(3);
    expect(blob.read(4)).toEqual([[4, 4]]);
    expect(blob.streams).toEqual([{ next: 5, window: 0, trigger: 5 }]);
  });
});

describe('fetch plan: merging', () => {
  it('splits runs at the merge cap and at gaps in the stored layout', () => {
    // 10 bytes the blob does not use between frames 4 and 5.
    const frames = layout(8).map((f, i) => (i >= 5 ? { ...f, compressedOffset: f.compressedOffset + 10 } : f));
    const input: PlanInput = { frames, states: { present: () => false, inFlight: () => false }, maxMergeBytes: 2500 };
    expect(fetches(missingSteps(input, 0, 7))).toEqual([[0, 1], [2, 3], [4, 4], [5, 6], [7, 7]]);
    expect(runEnd(input, 5, 5)).toBe(5);
  });

  it('a single frame above the cap is still one request', () => {
    const input: PlanInput = { frames: layout(3, 5000), states: { present: () => false, inFlight: () => false }, maxMergeBytes: 1000 };
    expect(fetches(missingSteps(input, 0, 2))).toEqual([[0, 0], [1, 1], [2, 2]]);
  });
});
