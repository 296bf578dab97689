import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { openCache, parseSize, resolveCacheDir, formatSize } from '../../src/cache/index.js';
import { makeBlobFixture } from '../helpers/blob-fixture.js';
import { ensureBuilt, repoRoot } from './dist-build.js';
import { tempDir, useCleanups } from './helpers.js';
import { ManualClock } from './manual-clock.js';

useCleanups();
const run = promisify(execFile);
const cli = (...args: string[]) => run(process.execPath, [join(repoRoot, 'bin', 'ondemand'), ...args], { env: { ...process.env, ONDEMAND_CACHE_DIR: '' } });

beforeAll(() => {
  ensureBuilt('dist/src/cli/commands/cache.js', ['src/cache', 'src/cli/commands/cache.ts', 'src/cli/commands/index.ts', 'src/native/statfs.ts', 'src/native/flock.ts']);
});

describe('ondemand cache ls|gc', () => {
  it('lists blobs with size, present % and last use; gc --max-size evicts the least recently used', async () => {
    const dir = tempDir();
    const fxs = [1, 2, 3].map((seed) => makeBlobFixture({ size: 128 * 1024, frameSize: 16384, compression: 'none', seed }));
    const clock = new ManualClock();
    const cache = await openCache({ dir, clock });
    for (const [k, fx] of fxs.entries()) {
      const b = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
      await b.ensure(0, k === 0 ? 64 * 1024 : 128 * 1024);
      await clock.advance(20); // each blob last used later than the one before
    }
    await cache.close();

    const ls = await cli('cache', 'ls', '--cache-dir', dir);
    expect(ls.stdout).toMatch(/3 blobs/);
    expect(ls.stdout).toContain(fxs[0]!.toc.blobId.slice(0, 16));
    expect(ls.stdout).toMatch(/50\.0%/);
    expect(ls.stdout).toMatch(/100\.0%/);
    const json = JSON.parse((await cli('cache', 'ls', '--cache-dir', dir, '--json')).stdout) as { blobs: { blobId: string; present: number }[] };
    expect(json.blobs).toHaveLength(3);

    const gc = await cli('cache', 'gc', '--cache-dir', dir, '--max-size', '300K');
    expect(gc.stdout).toMatch(/evicted 1 blobs/);
    const after = JSON.parse((await cli('cache', 'ls', '--cache-dir', dir, '--json')).stdout) as { blobs: { blobId: string }[]; totalBytes: number };
    expect(after.blobs.map((b) => b.blobId)).not.toContain(fxs[0]!.toc.blobId);
    expect(after.totalBytes).toBeLessThanOrEqual(300 * 1024);
  });

  it('gc refuses while another process owns the cache; bad sizes are usage errors', async () => {
    const dir = tempDir();
    const cache = await openCache({ dir });
    try {
      const err = await cli('cache', 'gc', '--cache-dir', dir, '--max-size', '1G').then(() => undefined, (e: { code: number; stderr: string }) => e);
      expect(err?.code).toBe(1);
      expect(err?.stderr).toMatch(/^ondemand: cache directory .* is in use by another ondemand process \(pid \d+\)/);
      const bad = await cli('cache', 'gc', '--cache-dir', dir, '--max-size', 'lots').then(() => undefined, (e: { code: number; stderr: string }) => e);
      expect(bad?.code).toBe(2);
      expect(bad?.stderr).toMatch(/bad size "lots"/);
    } finally {
      await cache.close();
    }
  });

  it("ls of a missing directory lists nothing and creates nothing", async () => {
    const { existsSync } = await import('node:fs');
    const missing = join(tempDir(), 'none');
    const ls = await cli('cache', 'ls', '--cache-dir', missing);
    expect(ls.stdout).toMatch(/0 blobs/);
    expect(existsSync(missing)).toBe(false);
  });
});

describe('cache dir and sizes', () => {
  it('resolves --cache-dir, then $ONDEMAND_CACHE_DIR, then /var/cache/ondemand', () => {
    const saved = process.env.ONDEMAND_CACHE_DIR;
    try {
      process.env.ONDEMAND_CACHE_DIR = '/srv/c';
      expect(resolveCacheDir('/x')).toBe('/x');
      expect(resolveCacheDir()).toBe('/srv/c');
      delete process.env.ONDEMAND_CACHE_DIR;
      expect(resolveCacheDir()).toBe('/var/cache/ondemand');
    } finally {
      if (saved === undefined) delete process.env.ONDEMAND_CACHE_DIR;
      else process.env.ONDEMAND_CACHE_DIR = saved;
    }
  });

  it('parses and formats sizes', () => {
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('512M')).toBe(512 * 1024 * 1024);
    expect(parseSize('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('10k')).toBe(10240);
    expect(() => parseSize('-1')).toThrow(/bad size/);
    expect(formatSize(3 * 1024 * 1024)).toBe('3.0 MiB');
  });
});
