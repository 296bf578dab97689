/**
 * A tree no one here wrote: Debian bookworm minbase (debootstrap). Built with `ondemand build`, mounted
 * by the kernel (file-backed and loop), compared field by field, fsck'd, exported, and used: `dpkg -l`
 * runs in a chroot on the mounted image.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { DEBIAN_CACHE, makeDebianTree } from '../helpers/trees.js';
import type { ResolvedImage } from '../../src/resolve/index.js';
import { fsckErofs, mountFileBacked, mountLoop, type LocalImageFiles } from './mounts.js';
import { ondemand } from './cli.js';
import { buildImage, expectExportEqualsSource, expectMountEqualsSource } from './round-trip.js';

const ok = needs('Debian image', [isRoot, 'root'], [existsSync(DEBIAN_CACHE) || haveCommand('debootstrap'), 'debootstrap (or a cached tree)'],
  [haveCommand('fsck.erofs'), 'fsck.erofs']);

describe.skipIf(!ok)('Debian minbase round trip', () => {
  let tmp: { dir: string; remove: () => void };
  let src: string;
  let ref: string;
  let resolved: ResolvedImage;
  let files: LocalImageFiles;

  beforeAll(async () => {
    tmp = makeTempDir('image-debian');
    src = join(tmp.dir, 'rootfs');
    const problem = makeDebianTree(src);
    if (problem !== undefined) throw new Error(`cannot make the Debian tree: ${problem}`);
    ref = `oci:${join(tmp.dir, 'layout')}:bookworm`;
    ({ resolved, files } = await buildImage(src, ref, tmp.dir));
  }, 900_000);

  afterAll(async () => {
    await resolved?.fetcher.close();
    tmp?.remove();
  });

  it('file-backed mount equals the rootfs, and dpkg runs in a chroot on it', () => {
    expectMountEqualsSource(mountFileBacked, files, join(tmp.dir, 'mnt-file'), src, (mnt) => {
      execFileSync('chroot', [mnt, '/bin/sh', '-c', 'dpkg -l >/dev/null'], { stdio: 'pipe', timeout: 60_000 });
      expect(execFileSync('chroot', [mnt, '/bin/sh', '-c', 'dpkg -l | grep -c "^ii"'], { encoding: 'utf8' }).trim()).toMatch(/^[0-9]{2,}$/);
    });
  }, 300_000);

  it('loop-device mount equals the rootfs', () => {
    expectMountEqualsSource(mountLoop, files, join(tmp.dir, 'mnt-loop'), src);
  }, 300_000);

  it('passes fsck.erofs and ondemand check', () => {
    expect(() => fsckErofs(files)).not.toThrow();
    expect(ondemand(['check', ref]).code).toBe(0);
  }, 600_000);

  it('ondemand export equals the rootfs', () => {
    expectExportEqualsSource(ref, join(tmp.dir, 'export'), src);
  }, 300_000);
});
