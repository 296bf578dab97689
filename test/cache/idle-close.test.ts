/**
 * A long-lived daemon serves many images: blobs nobody pins, opens or reads any more are closed (their
 * fds released) and reopen on demand with what was present; pinned blobs stay open.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makeBlobFixture } from '../helpers/blob-fixture.js';
import { CountingFetcher } from './fake-fetchers.js';
import { freshCache, useCleanups } from './helpers.js';
import { ManualClock } from './manual-clock.js';

useCleanups();

/** How many of this process's fds point into `dir`. */
function fdsUnder(dir: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir)) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

describe('idle blobs', () => {
  it('are closed after idleCloseMs unless pinned, and reopen with their frames present', async () => {
    const clock = new ManualClock();
    const { cache, dir } = await freshCache({ idleCloseMs: 300, clock });
    const fxA = makeBlobFixture({ size: 128 * 1024, frameSize: 16384, compression: 'gzip', seed: 7 });
    const fxB = makeBlobFixture({ size: 128 * 1024, frameSize: 16384, compression: 'gzip', seed: 8 });
    const fetchA = new CountingFetcher(fxA.fetcher);
    const a = await cache.openBlob(fxA.descriptor, { fetcher: fetchA, toc: fxA.toc });
    const b = await cache.openBlob(fxB.descriptor, { fetcher: fxB.fetcher, toc: fxB.toc });
    const unpinA = a.pin();
    const unpinB = b.pin();
    await a.ensure(0, a.size);
    await b.read(0, 4096);
    const blobFds = (): number => fdsUnder(`${dir}/blobs/`);
    expect(blobFds()).toBe(4);
    const fetchedA = a.stats().bytesFetched;
    expect(fetchedA).toBeGreaterThan(0);
    unpinA();
    await clock.advance(1200); // the idle checks due meanwhile run, and their closes finish
    expect(blobFds()).toBe(2); // A closed, pinned B open
    expect(cache.stats().bytesFetched).toBe(fetchedA + b.stats().bytesFetched); // counters survive the close

    const fetchesBefore = fetchA.requests;
    const again = await cache.openBlob(fxA.descriptor, { fetcher: fetchA, toc: fxA.toc });
    expect(again.isComplete()).toBe(true);
    expect((await again.read(0, again.size)).equals(fxA.uncompressed)).toBe(true);
    expect(fetchA.requests).toBe(fetchesBefore);
    unpinB();
  });
});
