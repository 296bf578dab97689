import { describe, expect, it } from 'vitest';
import { makeBlobFixture } from '../helpers/blob-fixture.js';
import { SlowFetcher } from './fake-fetchers.js';
import { freshCache, useCleanups } from './helpers.js';

useCleanups();

describe('cache reads', () => {
  it('reads a gzip blob whole and in pieces with correct bytes', async () => {
    const fx = makeBlobFixture({ size: 300_000, frameSize: 16384, compression: 'gzip', seed: 3 });
    const { cache } = await freshCache();
    const blob = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
    expect((await blob.read(1000, 5000)).equals(fx.uncompressed.subarray(1000, 6000))).toBe(true);
    expect((await blob.read(0, 1e9)).equals(fx.uncompressed)).toBe(true);
    await blob.idle?.();
    expect(blob.isComplete()).toBe(true);
    expect((await blob.read(299_999, 10)).length).toBe(1);
    expect((await blob.read(300_000, 10)).length).toBe(0);
  });

  it('1. 64 concurrent overlapping readers against a slow fetcher: each frame fetched once, all bytes right', async () => {
    const fx = makeBlobFixture({ size: 1024 * 1024, frameSize: 16384, compression: 'gzip', seed: 7 });
    const slow = new SlowFetcher(fx.fetcher, 20);
    const { cache } = await freshCache();
    const blob = await cache.openBlob(fx.descriptor, { fetcher: slow, toc: fx.toc });
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const reads = Array.from({ length: 64 }, () => {
      const off = rnd(fx.uncompressed.length - 1);
      const len = 1 + rnd(200_000);
      return blob.read(off, len).then((b) => ({ off, len, b }));
    });
    for (const { off, len, b } of await Promise.all(reads)) {
      expect(b.equals(fx.uncompressed.subarray(off, Math.min(off + len, fx.uncompressed.length)))).toBe(true);
    }
    // Every frame fetched at most once: the requested stored ranges never overlap.
    const hits = new Map<number, number>();
    for (const r of slow.ranges) {
      for (const f of fx.toc.frames) {
        if (f.compressedOffset >= r.offset && f.compressedOffset < r.offset + r.length) hits.set(f.compressedOffset, (hits.get(f.compressedOffset) ?? 0) + 1);
      }
    }
    expect([...hits.values()].every((n) => n === 1)).toBe(true);
    await blob.idle?.();
    const st = blob.stats();
    expect(st.framesPresent).toBe(hits.size);
    // Read the rest: still each frame once over the blob's life.
    expect((await blob.read(0, fx.uncompressed.length)).equals(fx.uncompressed)).toBe(true);
    const fetchedFrames = slow.ranges.reduce((n, r) => n + fx.toc.frames.filter((f) => f.compressedOffset >= r.offset && f.compressedOffset < r.offset + r.length).length, 0);
    expect(fetchedFrames).toBe(fx.toc.frames.length);
    expect(st.mergedRequests).toBeGreaterThan(0);
  });
});
