import { describe, expect, it } from 'vitest';
import { bandwidthBudget } from '../../src/cache/index.js';
import { makeBlobFixture } from '../helpers/blob-fixture.js';
import { CountingFetcher, FailingFetcher, SlowFetcher } from './fake-fetchers.js';
import { freshCache, useCleanups } from './helpers.js';
import { ManualClock } from './manual-clock.js';

useCleanups();

describe('prefetch', () => {
  it('fills the whole blob with merged requests', async () => {
    const fx = makeBlobFixture({ size: 3 * 1024 * 1024, frameSize: 65536, seed: 31 });
    const counting = new CountingFetcher(fx.fetcher);
    const { cache } = await freshCache({ maxMergeBytes: 1024 * 1024 });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc });
    await blob.prefetch();
    expect(blob.isComplete()).toBe(true);
    expect(counting.requests).toBeLessThanOrEqual(Math.ceil(fx.descriptor.tocOffset / (1024 * 1024)) + 2);
    expect(blob.stats().mergedRequests).toBeGreaterThan(0);
    const n = counting.requests;
    expect((await blob.read(0, fx.uncompressed.length)).equals(fx.uncompressed)).toBe(true);
    expect(counting.requests).toBe(n);
  });

  it('on-demand reads overtake a running prefetch', async () => {
    const fx = makeBlobFixture({ size: 40 * 16384, frameSize: 16384, compression: 'none', seed: 32 });
    const slow = new SlowFetcher(fx.fetcher, 25);
    // One request at a time and one frame per request: the queue order is all that decides.
    const { cache } = await freshCache({ maxConcurrentFetches: 1, prefetchConcurrency: 2, maxMergeBytes: 16384 });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: slow, toc: fx.toc });
    const prefetching = blob.prefetch();
    await slow.started(1); // the prefetch is fetching, its next job queued
    const lastFrame = 39 * 16384;
    const bytes = await blob.read(lastFrame, 100);
    expect(bytes.equals(fx.uncompressed.subarray(lastFrame, lastFrame + 100))).toBe(true);
    const position = slow.ranges.findIndex((r) => r.offset === lastFrame);
    const framesAtRead = blob.stats().framesPresent;
    expect(framesAtRead).toBeLessThan(20);
    await prefetching;
    expect(blob.isComplete()).toBe(true);
    // The demand request was served right after the prefetch requests already queued, not after all 39.
    expect(position).toBeLessThan(8);
    expect(slow.ranges.filter((r) => r.offset === lastFrame)).toHaveLength(1);
  });

  it('a priority list of ranges comes first; rangesOnly stops there', async () => {
    const fx = makeBlobFixture({ size: 20 * 16384, frameSize: 16384, compression: 'none', seed: 33 });
    const counting = new CountingFetcher(fx.fetcher);
    const { cache } = await freshCache({ prefetchConcurrency: 1 });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc });
    await blob.prefetch({ ranges: [{ offset: 15 * 16384, length: 2 * 16384 }, { offset: 2 * 16384, length: 100 }], rangesOnly: true });
    expect(counting.ranges.map((r) => r.offset)).toEqual([15 * 16384, 2 * 16384]);
    expect(blob.stats().framesPresent).toBe(3);
    await blob.prefetch({ ranges: [{ offset: 10 * 16384, length: 1 }] });
    expect(counting.ranges[2]?.offset).toBe(10 * 16384);
    expect(blob.isComplete()).toBe(true);
  });

  it('respects a bandwidth cap', async () => {
    const fx = makeBlobFixture({ size: 300 * 1024, frameSize: 16384, compression: 'none', seed: 34 });
    const clock = new ManualClock();
    const { cache } = await freshCache({ maxMergeBytes: 32 * 1024, clock });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
    // Seconds of the throttle's own clock: the time it made the prefetch wait.
    const t0 = clock.monotonic();
    await clock.drive(blob.prefetch({ bytesPerSecond: 300 * 1024 }));
    const seconds = (clock.monotonic() - t0) / 1000;
    expect(blob.isComplete()).toBe(true);
    expect(seconds).toBeGreaterThan(0.75);
    expect(seconds).toBeLessThan(5);
  });

  it('blobs sharing one budget keep to it together; a blob done early leaves its share to the others', async () => {
    const small = makeBlobFixture({ size: 32 * 1024, frameSize: 16384, compression: 'none', seed: 36 });
    const large = makeBlobFixture({ size: 288 * 1024, frameSize: 16384, compression: 'none', seed: 37 });
    const clock = new ManualClock();
    const { cache } = await freshCache({ maxMergeBytes: 32 * 1024, clock });
    const a = await cache.openBlob(small.descriptor, { fetcher: small.fetcher, toc: small.toc });
    const b = await cache.openBlob(large.descriptor, { fetcher: large.fetcher, toc: large.toc });
    const budget = bandwidthBudget(320 * 1024, clock);
    const t0 = clock.monotonic();
    await clock.drive(Promise.all([a.prefetch({ budget }), b.prefetch({ budget })]));
    const seconds = (clock.monotonic() - t0) / 1000;
    expect(a.isComplete() && b.isComplete()).toBe(true);
    // 320 KiB at 320 KiB/s: about 1 s (the first request's tokens are there at once). Half the rate
    // each, as before, would have held the large blob to 288 / 160 = 1.8 s.
    expect(seconds).toBeGreaterThan(0.75);
    expect(seconds).toBeLessThan(1.4);
  });

  it('reports fetch failures after trying every frame; abort stops it', async () => {
    const fx = makeBlobFixture({ size: 10 * 16384, frameSize: 16384, seed: 35 });
    const failing = new FailingFetcher(fx.fetcher);
    const { cache } = await freshCache();
    const blob = await cache.openBlob(fx.descriptor, { fetcher: failing, toc: fx.toc });
    await expect(blob.prefetch()).rejects.toThrow(/simulated network failure/);
    expect(blob.stats().framesPresent).toBe(0);
    const ac = new AbortController();
    ac.abort();
    await expect(blob.prefetch({ signal: ac.signal })).rejects.toThrow();
  });
});

describe('closing', () => {
  it('close() during a prefetch stops it, waits for running fetches, and refuses later reads', async () => {
    const fx = makeBlobFixture({ size: 100 * 16384, frameSize: 16384, compression: 'none', seed: 37 });
    const slow = new SlowFetcher(fx.fetcher, 10);
    const { cache } = await freshCache({ maxMergeBytes: 16384 });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: slow, toc: fx.toc });
    const prefetching = blob.prefetch().then(() => 'done', () => 'failed');
    await slow.started(1);
    await cache.close();
    expect(['done', 'failed']).toContain(await prefetching);
    expect(blob.isComplete()).toBe(false);
    expect(slow.inFlight).toBe(0);
    await expect(blob.read(0, 10)).rejects.toThrow(/closed/);
  });
});

describe('closing while throttled', () => {
  it('a prefetch worker waiting on the throttle starts nothing once the blob is closed', async () => {
    const fx = makeBlobFixture({ size: 40 * 16384, frameSize: 16384, compression: 'none', seed: 38 });
    const counting = new CountingFetcher(fx.fetcher);
    const clock = new ManualClock();
    const { cache } = await freshCache({ maxMergeBytes: 16384, clock });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc });
    const prefetching = blob.prefetch({ bytesPerSecond: 16384 }).then(() => 'done', () => 'failed');
    await counting.started(1);
    await blob.idle?.();
    const before = counting.requests;
    const closing = cache.close();
    // The throttle lets the waiting workers go only after the close has begun.
    await clock.advance(10_000);
    await closing;
    expect(['done', 'failed']).toContain(await prefetching);
    expect(counting.requests).toBe(before);
  });
});

describe('statistics and bootstraps', () => {
  it('counts hits, misses, bytes, requests, merges and wait times per blob and overall', async () => {
    const fx = makeBlobFixture({ size: 8 * 16384, frameSize: 16384, seed: 36 });
    const slow = new SlowFetcher(fx.fetcher, 15);
    const { cache } = await freshCache();
    const blob = await cache.openBlob(fx.descriptor, { fetcher: slow, toc: fx.toc });
    await blob.read(0, 3 * 16384);
    await blob.idle?.();
    await blob.read(0, 100);
    const s = blob.stats();
    expect(s).toMatchObject({ hits: 1, misses: 1, requestsFetched: 1, mergedRequests: 1, framesPresent: 3, framesTotal: 8 });
    expect(s.bytesFetched).toBe(fx.toc.frames[3]!.compressedOffset);
    const h = s.waitHistogram!;
    expect(h.counts.reduce((a, b) => a + b, 0)).toBe(1);
    expect(h.totalMs).toBeGreaterThanOrEqual(10);
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 1, framesPresent: 3, framesTotal: 8 });
  });

  it('bootstrapPath stores a verified bootstrap once (gzip or plain), refuses a wrong one', async () => {
    const { createHash } = await import('node:crypto');
    const { gzipSync } = await import('node:zlib');
    const { readFileSync } = await import('node:fs');
    const boot = Buffer.alloc(8192, 7);
    const digest = 'sha256:' + createHash('sha256').update(boot).digest('hex');
    const { cache } = await freshCache();
    let calls = 0;
    const p = await cache.bootstrapPath(digest, async () => {
      calls++;
      return gzipSync(boot);
    });
    expect(readFileSync(p).equals(boot)).toBe(true);
    expect(await cache.bootstrapPath(digest, async () => Buffer.alloc(0))).toBe(p);
    expect(calls).toBe(1);
    const other = 'sha256:' + createHash('sha256').update('x').digest('hex');
    await expect(cache.bootstrapPath(other, async () => boot)).rejects.toThrow(/bootstrap digest mismatch/);
  });

  it('a stored bootstrap deleted or changed behind the cache is fetched again, never handed out', async () => {
    const { createHash } = await import('node:crypto');
    const { readFileSync, rmSync, writeFileSync } = await import('node:fs');
    const boot = Buffer.alloc(8192, 9);
    const digest = 'sha256:' + createHash('sha256').update(boot).digest('hex');
    const { cache } = await freshCache();
    let calls = 0;
    const fetch = async (): Promise<Buffer> => {
      calls++;
      return boot;
    };
    const p = await cache.bootstrapPath(digest, fetch);
    rmSync(p);
    expect(readFileSync(await cache.bootstrapPath(digest, fetch)).equals(boot)).toBe(true);
    writeFileSync(p, Buffer.alloc(8192, 1));
    expect(readFileSync(await cache.bootstrapPath(digest, fetch)).equals(boot)).toBe(true);
    expect(calls).toBe(3);
  });
});
