import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeBlobFixture } from '../helpers/blob-fixture.js';
import { CountingFetcher } from './fake-fetchers.js';
import { freshCache, useCleanups } from './helpers.js';
import { ManualClock } from './manual-clock.js';
import { listCache } from '../../src/cache/index.js';

useCleanups();

/** What the directory really occupies: allocated blocks of every file and folder, like du. */
function diskUsage(dir: string): number {
  let total = statSync(dir).blocks * 512;
  for (const name of readdirSync(dir, { recursive: true }) as string[]) total += statSync(join(dir, name)).blocks * 512;
  return total;
}

describe('eviction', () => {
  it('5. keeps the directory under its limit while a pinned (mounted) blob stays whole', async () => {
    const maxSize = 1024 * 1024;
    const { cache, dir } = await freshCache({ maxSize, highWatermark: 0.95, lowWatermark: 0.75 });
    const blobSize = 256 * 1024;
    const pinnedFx = makeBlobFixture({ size: blobSize, frameSize: 16384, compression: 'none', seed: 100 });
    const pinnedFetcher = new CountingFetcher(pinnedFx.fetcher);
    const pinned = await cache.openBlob(pinnedFx.descriptor, { fetcher: pinnedFetcher, toc: pinnedFx.toc });
    const unpin = pinned.pin();
    await pinned.ensure(0, blobSize);
    const pinnedFetches = pinnedFetcher.requests;

    const others = Array.from({ length: 8 }, (_, i) => makeBlobFixture({ size: blobSize, frameSize: 16384, compression: 'none', seed: 200 + i }));
    let maxSeen = 0;
    for (const fx of others) {
      const b = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
      // Several reads per blob, so eviction also meets blobs that are partly present.
      for (let off = 0; off < blobSize; off += 64 * 1024) expect((await b.read(off, 64 * 1024)).equals(fx.uncompressed.subarray(off, off + 64 * 1024))).toBe(true);
      await b.idle?.();
      const used = diskUsage(dir);
      maxSeen = Math.max(maxSeen, used);
      expect(used).toBeLessThanOrEqual(maxSize);
      expect(pinned.isComplete()).toBe(true);
    }
    // The pinned blob is still whole: read without a single fetch.
    expect((await pinned.read(0, blobSize)).equals(pinnedFx.uncompressed)).toBe(true);
    expect(pinnedFetcher.requests).toBe(pinnedFetches);
    // The oldest unpinned blob was evicted: reading it fetches again, with the right bytes.
    const first = others[0]!;
    const again = new CountingFetcher(first.fetcher);
    const b0 = await cache.openBlob(first.descriptor, { fetcher: again, toc: first.toc });
    expect(b0.isComplete()).toBe(false);
    expect(Math.abs(cache.usage() - diskUsage(dir))).toBeLessThan(64 * 1024);

    // Explicit gc below the pinned blob's size: everything else goes, the pinned blob stays.
    unpin();
    const keep = pinned.pin();
    const res = await cache.gc({ maxSize: 300 * 1024 });
    expect(res.evictedBlobs.length).toBeGreaterThan(0);
    expect(pinned.isComplete()).toBe(true);
    expect(diskUsage(dir)).toBeLessThanOrEqual(maxSize);
    const listing = listCache(dir);
    const ids = listing.blobs.filter((e) => (e.framesPresent ?? 0) > 0).map((e) => e.blobId);
    expect(ids).toEqual([pinnedFx.toc.blobId]);
    keep();
    process.stderr.write(`eviction: max disk usage seen ${maxSeen} of ${maxSize} bytes\n`);
  });
});

describe('eviction and prefetch', () => {
  it('a prefetch that meets an eviction fetches only after it, and every frame it marks is right', async () => {
    const fx = makeBlobFixture({ size: 16 * 16384, frameSize: 16384, compression: 'none', seed: 300 });
    const { cache } = await freshCache({ maxMergeBytes: 16384 });
    let duringEviction = 0;
    let blob: { gate?: Promise<void> | null } = {};
    // Counts fetches made while the entry's eviction gate (peeked at) is up.
    const fetcher = new (class extends CountingFetcher {
      override fetchRange(...args: Parameters<CountingFetcher['fetchRange']>): Promise<Buffer> {
        if (blob.gate) duringEviction++;
        return super.fetchRange(...args);
      }
    })(fx.fetcher);
    const b = await cache.openBlob(fx.descriptor, { fetcher, toc: fx.toc });
    blob = b as unknown as { gate?: Promise<void> | null };
    expect((await b.read(0, 4 * 16384)).equals(fx.uncompressed.subarray(0, 4 * 16384))).toBe(true);
    await b.idle?.();
    // gc reaches the (unpinned, idle) blob's eviction without awaiting; the prefetch starts right then.
    const gc = cache.gc({ maxSize: 0 });
    const prefetch = b.prefetch();
    const res = await gc;
    await prefetch;
    expect(res.evictedBlobs).toEqual([fx.toc.blobId]);
    expect(duringEviction).toBe(0);
    expect(b.isComplete()).toBe(true);
    expect((await b.read(0, fx.uncompressed.length)).equals(fx.uncompressed)).toBe(true);
  });

  it('a blob being prefetched is not evicted while its prefetch waits in the throttle', async () => {
    const fx = makeBlobFixture({ size: 8 * 16384, frameSize: 16384, compression: 'none', seed: 301 });
    const clock = new ManualClock();
    const { cache } = await freshCache({ maxMergeBytes: 16384, clock });
    const counting = new CountingFetcher(fx.fetcher);
    const b = await cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc });
    const prefetch = b.prefetch({ bytesPerSecond: 16384 * 8 }); // 8 frames in about 1 s of the clock
    // The first frame goes at once; the rest waits in the throttle until the clock moves.
    await counting.started(1);
    await b.idle?.();
    expect(b.stats().framesPresent).toBeGreaterThan(0);
    expect(b.isComplete()).toBe(false);
    expect((await cache.gc({ maxSize: 0 })).evictedBlobs).toEqual([]);
    await clock.drive(prefetch);
    expect(b.isComplete()).toBe(true);
    expect((await cache.gc({ maxSize: 0 })).evictedBlobs).toEqual([fx.toc.blobId]);
  });
});
