import { describe, expect, it } from 'vitest';
import { IntegrityError, FetchError } from '../../src/util/errors.js';
import { makeBlobFixture } from '../helpers/blob-fixture.js';
import { CorruptingFetcher, FailingFetcher, CountingFetcher } from './fake-fetchers.js';
import { freshCache, useCleanups } from './helpers.js';
import { openCache } from '../../src/cache/index.js';

useCleanups();

describe('fetch failures', () => {
  it('2. corrupted bytes: never marked present, reader gets IntegrityError, next read fetches again', async () => {
    for (const compression of ['gzip', 'none'] as const) {
      const fx = makeBlobFixture({ size: 200_000, frameSize: 16384, compression, seed: 11 });
      const bad = new CorruptingFetcher(fx.fetcher);
      const { cache, dir } = await freshCache();
      const blob = await cache.openBlob(fx.descriptor, { fetcher: bad, toc: fx.toc });
      // Two concurrent readers of the same frame: both get the error, one request made.
      const [a, b] = await Promise.allSettled([blob.read(20_000, 100), blob.read(20_050, 10)]);
      expect(a.status).toBe('rejected');
      expect(b.status).toBe('rejected');
      expect((a as PromiseRejectedResult).reason).toBeInstanceOf(IntegrityError);
      expect(bad.requests).toBe(1);
      expect(blob.hasFrame?.(1)).toBe(false);
      expect(blob.stats().framesPresent).toBe(0);
      expect(blob.stats().integrityErrors).toBe(1);
      await expect(blob.ensure(20_000, 100)).rejects.toBeInstanceOf(IntegrityError);
      expect(bad.requests).toBe(2);
      // The persisted map agrees: reopen the cache and the frame is still missing.
      await cache.close();
      const again = await openCache({ dir });
      const b2 = await again.openBlob(fx.descriptor, { fetcher: bad, toc: fx.toc });
      expect(b2.hasFrame?.(1)).toBe(false);
      bad.corrupt = false;
      const ok = await b2.read(20_000, 100);
      expect(ok.equals(fx.uncompressed.subarray(20_000, 20_100))).toBe(true);
      expect(bad.requests).toBe(3);
      await again.close();
    }
  });

  it("hash: 'threadpool' verifies the same way (right bytes served, corruption refused)", async () => {
    const fx = makeBlobFixture({ size: 100_000, frameSize: 16384, seed: 12 });
    const bad = new CorruptingFetcher(fx.fetcher);
    const { cache } = await freshCache({ hash: 'threadpool' });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: bad, toc: fx.toc });
    await expect(blob.read(0, 100)).rejects.toBeInstanceOf(IntegrityError);
    bad.corrupt = false;
    expect((await blob.read(0, 100_000)).equals(fx.uncompressed)).toBe(true);
  });

  it('a failing fetcher: typed FetchError to every waiter, nothing marked, retried next read', async () => {
    const fx = makeBlobFixture({ size: 100_000, frameSize: 16384, seed: 5 });
    const failing = new FailingFetcher(fx.fetcher);
    const { cache } = await freshCache();
    const blob = await cache.openBlob(fx.descriptor, { fetcher: failing, toc: fx.toc });
    const rs = await Promise.allSettled([blob.read(0, 50_000), blob.read(10, 10), blob.ensure(0, 100_000)]);
    for (const r of rs) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(FetchError);
    }
    expect(blob.stats().framesPresent).toBe(0);
    failing.failing = false;
    expect((await blob.read(0, 100_000)).equals(fx.uncompressed)).toBe(true);
  });

  it('a fetcher returning a short buffer is a FetchError, not stored', async () => {
    const fx = makeBlobFixture({ size: 40_000, frameSize: 8192, seed: 6 });
    const short = new CountingFetcher(fx.fetcher);
    short.fetchRange = async (d, r, o) => (await fx.fetcher.fetchRange(d, r, o)).subarray(1);
    const { cache } = await freshCache();
    const blob = await cache.openBlob(fx.descriptor, { fetcher: short, toc: fx.toc });
    await expect(blob.read(0, 100)).rejects.toBeInstanceOf(FetchError);
    expect(blob.stats().framesPresent).toBe(0);
  });
});

describe('hits', () => {
  it('4. ensure then read, and read then ensure, on the same range: the second is a hit with 0 fetches', async () => {
    const fx = makeBlobFixture({ size: 500_000, frameSize: 16384, seed: 9 });
    const counting = new CountingFetcher(fx.fetcher);
    const { cache } = await freshCache();
    const blob = await cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc });

    await blob.ensure(10_000, 60_000);
    const n1 = counting.requests;
    const hits1 = blob.stats().hits;
    expect(n1).toBeGreaterThan(0);
    expect((await blob.read(10_000, 60_000)).equals(fx.uncompressed.subarray(10_000, 70_000))).toBe(true);
    expect(counting.requests).toBe(n1);
    expect(blob.stats().hits).toBe(hits1 + 1);

    expect((await blob.read(300_000, 90_000)).equals(fx.uncompressed.subarray(300_000, 390_000))).toBe(true);
    const n2 = counting.requests;
    // read returns once the bytes are verified; they become present when durable a moment later.
    await blob.idle?.();
    expect([18, 19, 20, 21, 22, 23].every((i) => blob.hasFrame?.(i))).toBe(true);
    const hits2 = blob.stats().hits;
    await blob.ensure(300_000, 90_000);
    expect(counting.requests).toBe(n2);
    expect(blob.stats().hits).toBe(hits2 + 1);
  });

  it('one CachedBlob per blob id: two transports opening the same blob share frames', async () => {
    const fx = makeBlobFixture({ size: 100_000, frameSize: 16384, seed: 2 });
    const counting = new CountingFetcher(fx.fetcher);
    const { cache } = await freshCache();
    const [a, b] = await Promise.all([
      cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc }),
      cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc }),
    ]);
    expect(a).toBe(b);
    await a.ensure(0, 100_000);
    const n = counting.requests;
    await b.read(0, 100_000);
    expect(counting.requests).toBe(n);
  });

  it('a later opener brings a fresh fetcher (the first one was closed by an unmount); a different frame layout is refused', async () => {
    const fx = makeBlobFixture({ size: 100_000, frameSize: 16384, seed: 3 });
    const first = new FailingFetcher(fx.fetcher);
    first.failing = false;
    const { cache } = await freshCache();
    const a = await cache.openBlob(fx.descriptor, { fetcher: first, toc: fx.toc });
    await a.ensure(0, 20_000);
    first.failing = true; // closed
    const second = new CountingFetcher(fx.fetcher);
    const b = await cache.openBlob(fx.descriptor, { fetcher: second, toc: fx.toc });
    expect(b).toBe(a);
    expect((await b.read(0, 100_000)).equals(fx.uncompressed)).toBe(true);
    expect(second.requests).toBeGreaterThan(0);
    const other = makeBlobFixture({ size: 100_000, frameSize: 8192, seed: 3 });
    await expect(cache.openBlob(other.descriptor, { fetcher: other.fetcher, toc: other.toc })).rejects.toThrow(/different frame layout/);
  });
});
