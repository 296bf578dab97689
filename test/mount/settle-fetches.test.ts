/**
 * The unmount's wait for fetches its reads started (so frames already fetched are kept for the next
 * mount, and no queued fetch uses the closed fetcher), and the daemon's cache options. Fakes only: the
 * end-to-end proof (a second mount of the Debian image fetches 0 bytes) is debian.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CachedBlob } from '../../src/cache/types.js';
import { settleFetches } from '../../src/mount/manager.js';
import { DAEMON_READ_AHEAD_FRAMES } from '../../src/config/keys.js';
import { cacheOptions } from '../../src/daemon/worker.js';

/** A blob whose in-flight fetches end when the test says so (`finish()`), or never. */
function busyBlob(): { blob: CachedBlob; finish: () => void } {
  let finish = (): void => undefined;
  const done = new Promise<void>((resolve) => { finish = resolve; });
  return { blob: { idle: () => done } as unknown as CachedBlob, finish };
}

/** Whether `p` has settled, after every pending microtask ran. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let state = false;
  void p.then(() => { state = true; });
  await vi.advanceTimersByTimeAsync(0);
  return state;
}

describe('settleFetches', () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  it('waits until every blob is idle', async () => {
    const a = busyBlob();
    const b = busyBlob();
    const settling = settleFetches([a.blob, b.blob], 'img', 5_000);
    expect(await settled(settling)).toBe(false);
    a.finish();
    expect(await settled(settling)).toBe(false);
    b.finish();
    expect(await settled(settling)).toBe(true);
  });

  it('gives up after the limit when a fetch never ends', async () => {
    const settling = settleFetches([busyBlob().blob], 'img', 200);
    await vi.advanceTimersByTimeAsync(199);
    expect(await settled(settling)).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await settled(settling)).toBe(true);
  });

  it('does not wait for blobs without idle()', async () => {
    expect(await settled(settleFetches([{} as CachedBlob], 'img', 5_000))).toBe(true);
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
