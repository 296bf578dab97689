/**
 * Device nodes in an image: an image is untrusted, so mounts are nodev unless `--allow-devices` says
 * otherwise (chroot use), through the real daemon and the fuse-blobs transport.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, makeHarness, type Harness } from './harness.js';
import { buildImage, makeTree, type TestImage } from './images.js';

function opens(path: string): string {
  try {
    closeSync(openSync(path, 'r'));
    return 'opened';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'error';
  }
}

describe.skipIf(!needs('device nodes in images', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']))('device nodes in an image', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  let image: TestImage;
  beforeAll(async () => {
    h = makeHarness('devices');
    src = makeTempDir('devices-src');
    makeTree(join(src.dir, 'tree'), { seed: 'd', bulkBytes: 1024 });
    execFileSync('mknod', [join(src.dir, 'tree', 'etc', 'null'), 'c', '1', '3']);
    image = await buildImage(h, join(src.dir, 'tree'), join(src.dir, 'layout'));
  });
  afterAll(async () => {
    await h.cleanup();
    src.remove();
  });

  it('mounts nodev by default: the device node is there but cannot be opened', async () => {
    const mp = h.mountpoint();
    await h.ok('mount', ...image.args, mp);
    const options = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === mp)!.split(' ')[5]!;
    expect(options.split(',')).toContain('nodev');
    expect(opens(join(mp, 'etc', 'null'))).toBe('EACCES');
    await h.ok('umount', mp);
  });

  it('--allow-devices mounts without nodev: the node works', async () => {
    const mp = h.mountpoint();
    await h.ok('mount', '--allow-devices', ...image.args, mp);
    const options = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === mp)!.split(' ')[5]!;
    expect(options.split(',')).not.toContain('nodev');
    expect(opens(join(mp, 'etc', 'null'))).toBe('opened');
    await h.ok('umount', mp);
  });
});
