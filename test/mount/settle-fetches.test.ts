/**
 * The unmount's wait for fetches its reads started (so frames already fetched are kept for the next
 * mount, and no queued fetch uses the closed fetcher), and the daemon's cache options. Fakes only: the
 * end-to-end proof (a second mount of the Debian image fetches 0 bytes) is debian.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { CachedBlob } from '../../src/cache/types.js';
import { settleFetches } from '../../src/mount/manager.js';
import { cacheOptions, DAEMON_READ_AHEAD_FRAMES } from '../../src/daemon/worker.js';

/** A blob whose in-flight fetches end after `ms` (never when undefined). */
function blobBusyFor(ms: number | undefined, done: { at?: number }): CachedBlob {
  const idle = (): Promise<void> =>
    new Promise((resolve) => {
      if (ms !== undefined) setTimeout(() => { done.at = Date.now(); resolve(); }, ms);
    });
  return { idle } as unknown as CachedBlob;
}

describe('settleFetches', () => {
  it('waits until every blob is idle', async () => {
    const a: { at?: number } = {};
    const b: { at?: number } = {};
    const started = Date.now();
    await settleFetches([blobBusyFor(50, a), blobBusyFor(150, b)], 'img', 5_000);
    expect(a.at).toBeDefined();
    expect(b.at).toBeDefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('gives up after the limit when a fetch never ends', async () => {
    const started = Date.now();
    await settleFetches([blobBusyFor(undefined, {})], 'img', 200);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(2_000);
  });

  it('does not wait for blobs without idle()', async () => {
    const started = Date.now();
    await settleFetches([{} as CachedBlob], 'img', 5_000);
    expect(Date.now() - started).toBeLessThan(100);
  });
});

describe('daemon cache options', () => {
  it('reads ahead by default, with the size limit and read-ahead from the environment', () => {
    expect(cacheOptions('/c', {})).toEqual({ dir: '/c', readAheadFrames: DAEMON_READ_AHEAD_FRAMES });
    expect(cacheOptions('/c', { ONDEMAND_CACHE_MAX_SIZE: '2G', ONDEMAND_CACHE_READ_AHEAD_FRAMES: '0' }))
      .toEqual({ dir: '/c', readAheadFrames: 0, maxSize: 2 * 1024 ** 3 });
    expect(() => cacheOptions('/c', { ONDEMAND_CACHE_READ_AHEAD_FRAMES: '-1' })).toThrow(/READ_AHEAD_FRAMES/);
    expect(() => cacheOptions('/c', { ONDEMAND_CACHE_MAX_SIZE: 'lots' })).toThrow(/bad size/);
  });
});
