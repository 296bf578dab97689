/** Shared setup for the cache tests: fresh cache directories cleaned up after each test. */
import { afterEach } from 'vitest';
import { openCache, type Cache, type CacheOptions } from '../../src/cache/index.js';
import { makeTempDir } from '../helpers/env.js';

const cleanups: (() => Promise<void> | void)[] = [];

/** Registers cleanup in this file's afterEach (call once at the top of a test file). */
export function useCleanups(): (fn: () => Promise<void> | void) => void {
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()?.();
  });
  return (fn) => cleanups.push(fn);
}

export function tempDir(prefix = 'cache'): string {
  const tmp = makeTempDir(prefix);
  cleanups.push(tmp.remove);
  return tmp.dir;
}

/** A cache in a new temp dir; closed (before the dir is removed) after the test. */
export async function freshCache(options: CacheOptions = {}): Promise<{ cache: Cache; dir: string }> {
  const dir = options.dir ?? tempDir();
  const cache = await openCache({ ...options, dir });
  cleanups.push(() => cache.close());
  return { cache, dir };
}
