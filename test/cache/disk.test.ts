/** Must show 6: a full disk gives a clear ENOSPC CacheError and no false presence; tmpfs and overlayfs are refused. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache/index.js';
import { decodeMapAny } from '../../src/cache/presence-map.js';
import { CacheError } from '../../src/util/errors.js';
import { makeBlobFixture } from '../helpers/blob-fixture.js';
import { haveCommand, isRoot, needs } from '../helpers/env.js';
import { tempDir, useCleanups } from './helpers.js';

const onCleanup = useCleanups();

/** Mounts for this test only; unmounted in cleanup (plain umount frees a loop device at once). */
function mountFor(args: string[], target: string): void {
  execFileSync('mount', [...args, target], { stdio: 'pipe' });
  onCleanup(() => {
    try {
      execFileSync('umount', [target], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', target], { stdio: 'ignore' });
    }
  });
}

describe.skipIf(!needs('cache disk tests', [isRoot, 'root'], [haveCommand('mkfs.ext4'), 'mkfs.ext4']))('full and unsuitable disks', () => {
  it('6. a disk that fills up: clear ENOSPC CacheError, no frame marked present that is not', async () => {
    const work = tempDir('enospc');
    const image = join(work, 'fs.img');
    const mnt = join(work, 'mnt');
    mkdirSync(mnt);
    execFileSync('truncate', ['-s', '8M', image]);
    execFileSync('mkfs.ext4', ['-q', '-F', '-b', '4096', '-m', '0', image], { stdio: 'pipe' });
    mountFor(['-o', 'loop', image], mnt);
    // onCleanup runs last-registered first: the mount goes before the temp dir is removed.
    const dir = join(mnt, 'cache');
    const fx = makeBlobFixture({ size: 16 * 1024 * 1024, frameSize: 65536, compression: 'gzip', seed: 66 });
    const cache = await openCache({ dir });
    let closed = false;
    onCleanup(async () => {
      if (!closed) await cache.close();
    });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
    // Frame-sized ensures until the disk is full (ensure needs the bytes in the file).
    let err: unknown;
    let lastOk = -1;
    for (let off = 0; off < fx.uncompressed.length && err === undefined; off += 65536) {
      err = await blob.ensure(off, 65536).then(() => {
        lastOk = off;
        return undefined;
      }, (e: unknown) => e);
    }
    const whole = await blob.ensure(0, fx.uncompressed.length).then(() => undefined, (e: unknown) => e);
    expect(whole).toBeInstanceOf(CacheError);
    expect(lastOk).toBeGreaterThan(0);
    // read still serves verified bytes of a frame the full disk cannot keep (and does not mark it).
    const tail = fx.uncompressed.length - 65536;
    expect((await blob.read(tail, 65536)).equals(fx.uncompressed.subarray(tail))).toBe(true);
    expect(blob.hasFrame?.(fx.toc.frames.length - 1)).toBe(false);
    expect(err).toBeInstanceOf(CacheError);
    expect((err as CacheError).message).toMatch(/ENOSPC/);
    expect((err as CacheError).message).toMatch(/disk full/);
    expect((err as CacheError).errno).toBe(28);
    // Reads of frames that made it still work; frames that did not are not claimed.
    const data = readFileSync(blob.dataPath);
    let present = 0;
    for (let i = 0; i < fx.toc.frames.length; i++) {
      if (!blob.hasFrame?.(i)) continue;
      present++;
      const f = fx.toc.frames[i]!;
      expect(data.subarray(f.uncompressedOffset, f.uncompressedOffset + f.uncompressedSize).equals(fx.uncompressed.subarray(f.uncompressedOffset, f.uncompressedOffset + f.uncompressedSize))).toBe(true);
    }
    expect(present).toBeGreaterThan(0);
    expect(present).toBeLessThan(fx.toc.frames.length);
    expect(blob.isComplete()).toBe(false);
    closed = true;
    await cache.close();
    // The persisted map says the same after the owner is gone.
    const map = decodeMapAny(readFileSync(blob.mapPath!))!;
    expect(map.bits.count).toBe(present);
    for (const i of map.bits.present()) {
      const f = fx.toc.frames[i]!;
      expect(data.subarray(f.uncompressedOffset, f.uncompressedOffset + f.uncompressedSize).equals(fx.uncompressed.subarray(f.uncompressedOffset, f.uncompressedOffset + f.uncompressedSize))).toBe(true);
    }
  });

  it('refuses a tmpfs cache directory clearly', async () => {
    const mnt = tempDir('tmpfs');
    mountFor(['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs'], mnt);
    await expect(openCache({ dir: join(mnt, 'cache') })).rejects.toThrow(/is on tmpfs, which the cache refuses.*ext4, xfs or btrfs/);
  });

  it('refuses an overlayfs cache directory clearly', async () => {
    const work = tempDir('overlay');
    for (const d of ['lower', 'upper', 'work', 'merged']) mkdirSync(join(work, d));
    mountFor(['-t', 'overlay', 'overlay', '-o', `lowerdir=${join(work, 'lower')},upperdir=${join(work, 'upper')},workdir=${join(work, 'work')}`], join(work, 'merged'));
    await expect(openCache({ dir: join(work, 'merged', 'cache') })).rejects.toThrow(/is on overlayfs, which the cache refuses/);
  });
});
