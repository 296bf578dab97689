import { describe, expect, it } from 'vitest';
import { makeBlobFixture } from '../helpers/blob-fixture.js';
import { CountingFetcher } from './fake-fetchers.js';
import { freshCache, useCleanups } from './helpers.js';

useCleanups();

const FRAME = 16384;

describe('read-ahead', () => {
  it('reads ahead only of reads that continue a sequential one; isolated misses fetch just their frames', async () => {
    const fx = makeBlobFixture({ size: 64 * FRAME, frameSize: FRAME, compression: 'none', seed: 400 });
    const counting = new CountingFetcher(fx.fetcher);
    const { cache } = await freshCache({ readAheadFrames: 2, maxMergeBytes: 1024 * 1024 });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc });
    const frames = (): [number, number][] => counting.ranges.map((r) => [r.offset / FRAME, (r.offset + r.length) / FRAME - 1]);
    const read = async (frame: number, offsetInFrame = 0, length = 4096): Promise<void> => {
      const at = frame * FRAME + offsetInFrame;
      expect((await blob.read(at, length)).equals(fx.uncompressed.subarray(at, at + length))).toBe(true);
    };

    await read(10); // isolated: frame 10 only
    await read(10, 8192); // the same frame again (present, or still in flight): no read-ahead
    await read(11); // continues: 11 alone, and a read-ahead of 1 frame in a request of its own
    await read(12); // present (read ahead), the stream's trigger: the next read-ahead, 2 frames
    await read(13, 12288); // the trigger again: 2 more (readAheadFrames)
    await read(14); // inside the window: nothing
    await read(40); // isolated, elsewhere
    await read(30, FRAME - 4096, 8192); // a read across frames 30-31: isolated too
    await read(32); // continues that one: 32, and 1 frame ahead
    expect(frames()).toEqual([[10, 10], [11, 11], [12, 12], [13, 14], [15, 16], [40, 40], [30, 31], [32, 32], [33, 33]]);
  });

  it("takes the fetcher's own read-ahead request size over the cache's", async () => {
    const fx = makeBlobFixture({ size: 64 * FRAME, frameSize: FRAME, compression: 'none', seed: 402 });
    // One frame per read-ahead request (a source that prefers small ones); the cache's tuning would merge 4.
    const counting = Object.assign(new CountingFetcher(fx.fetcher), { readAheadRequestBytes: FRAME });
    const { cache } = await freshCache({ readAheadFrames: 4, maxMergeBytes: 1024 * 1024 });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc });
    for (let i = 0; i < 4; i++) await blob.read(i * FRAME, FRAME);
    const frames = counting.ranges.map((r) => [r.offset / FRAME, (r.offset + r.length) / FRAME - 1]);
    // 0, 1 (its read-ahead: 2), the trigger 2 (3-4), the trigger 3 (5-8): one request a frame.
    expect(frames).toEqual([[0, 0], [1, 1], [2, 2], [3, 3], [4, 4], [5, 5], [6, 6], [7, 7], [8, 8]]);
  });

  it('two files read side by side each keep their read-ahead', async () => {
    const fx = makeBlobFixture({ size: 64 * FRAME, frameSize: FRAME, compression: 'none', seed: 401 });
    const counting = new CountingFetcher(fx.fetcher);
    const { cache } = await freshCache({ readAheadFrames: 3, maxMergeBytes: 1024 * 1024 });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc });
    for (let i = 0; i < 8; i++) {
      await blob.read(i * FRAME, FRAME);
      await blob.read((32 + i) * FRAME, FRAME);
    }
    // 0, 1, 2, 3-4, 5-7, 8-10 and 32, 33, 34, 35-36, 37-39, 40-42: each stream is followed on its own.
    expect(counting.requests).toBe(12);
  });
});
