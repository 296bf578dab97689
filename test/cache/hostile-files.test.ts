/**
 * Issue 13, point 3: cache files are never opened through a symlink (pre-placed links would make root
 * write their targets) nor as anything but regular files; directories are 0700 and files 0600, also
 * in a cache made before (modes tightened on open).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache/index.js';
import { CacheError } from '../../src/util/errors.js';
import { makeBlobFixture } from '../helpers/blob-fixture.js';
import { tempDir, useCleanups } from './helpers.js';

useCleanups();

const fx = makeBlobFixture({ size: 4 * 16384, frameSize: 16384, seed: 41 });

function modesUnder(dir: string): Map<string, number> {
  const out = new Map<string, number>([['.', statSync(dir).mode & 0o777]]);
  for (const name of readdirSync(dir, { recursive: true }) as string[]) out.set(name, statSync(join(dir, name)).mode & 0o777);
  return out;
}

describe('hostile entries in the cache directory', () => {
  for (const which of ['data', 'map'] as const) {
    it(`a symlink planted at <id>.${which} is refused with an error naming it; its target is untouched`, async () => {
      const dir = tempDir();
      const victim = join(tempDir('victim'), 'passwd');
      writeFileSync(victim, 'root:x:0:0\n');
      mkdirSync(join(dir, 'blobs'), { recursive: true });
      const planted = join(dir, 'blobs', `${fx.toc.blobId}.${which}`);
      symlinkSync(victim, planted);
      const cache = await openCache({ dir });
      try {
        const err = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc }).then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(CacheError);
        expect((err as Error).message).toContain(planted);
        expect((err as Error).message).not.toContain('\n');
      } finally {
        await cache.close();
      }
      expect(readFileSync(victim, 'utf8')).toBe('root:x:0:0\n');
    });
  }

  it('a symlink planted at <dir>/lock is refused; its target is untouched', async () => {
    const dir = tempDir();
    const victim = join(tempDir('victim'), 'shadow');
    writeFileSync(victim, 'secret\n');
    symlinkSync(victim, join(dir, 'lock'));
    await expect(openCache({ dir })).rejects.toThrow(join(dir, 'lock'));
    expect(readFileSync(victim, 'utf8')).toBe('secret\n');
  });

  it('a fifo where the map should be is refused, not opened', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'blobs'), { recursive: true });
    const fifo = join(dir, 'blobs', `${fx.toc.blobId}.map`);
    execFileSync('mkfifo', [fifo]);
    const cache = await openCache({ dir });
    try {
      await expect(cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc })).rejects.toThrow(fifo);
    } finally {
      await cache.close();
    }
  });

  it('a symlink in place of the blobs folder is refused', async () => {
    const dir = tempDir();
    const elsewhere = tempDir('elsewhere');
    symlinkSync(elsewhere, join(dir, 'blobs'));
    await expect(openCache({ dir })).rejects.toThrow(join(dir, 'blobs'));
    expect(readdirSync(elsewhere)).toEqual([]);
  });
});

describe('modes', () => {
  it('a new cache has 0700 folders and 0600 files', async () => {
    const dir = join(tempDir(), 'c');
    const cache = await openCache({ dir });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
    await blob.ensure(0, 16384);
    await cache.bootstrapPath(`sha256:${fx.toc.frames[0]!.digest}`, async () => fx.uncompressed.subarray(0, 16384));
    await cache.close();
    for (const [name, mode] of modesUnder(dir)) {
      const isDir = statSync(join(dir, name)).isDirectory();
      expect(mode, name).toBe(isDir ? 0o700 : 0o600);
    }
  });

  it('an existing cache made with looser modes is tightened on open', async () => {
    const dir = join(tempDir(), 'c');
    const cache = await openCache({ dir });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
    await blob.ensure(0, 16384);
    await cache.close();
    for (const name of ['.', 'blobs', 'bootstraps', 'tmp']) chmodSync(join(dir, name), 0o755);
    for (const name of readdirSync(join(dir, 'blobs'))) chmodSync(join(dir, 'blobs', name), 0o644);
    chmodSync(join(dir, 'lock'), 0o644);
    const again = await openCache({ dir });
    const b = await again.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
    expect((await b.read(0, 16384)).equals(fx.uncompressed.subarray(0, 16384))).toBe(true);
    await again.close();
    for (const [name, mode] of modesUnder(dir)) {
      const isDir = statSync(join(dir, name)).isDirectory();
      expect(mode, name).toBe(isDir ? 0o700 : 0o600);
    }
  });
});
