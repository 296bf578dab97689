/**
 * The goal end to end: a Debian bookworm minbase rootfs built with `ondemand build`, pushed to a real
 * registry on 127.0.0.1, mounted lazily; `chroot MNT /bin/sh -c 'dpkg -l | wc -l'` works, the bytes
 * fetched for `chroot MNT /bin/true` are a small fraction of the image, and a second mount fetches 0.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeDebianTree } from '../helpers/trees.js';
import { compareTrees } from '../helpers/tree-compare.js';
import { cliBuilt, erofsMount, leftovers, makeHarness, type Harness } from './harness.js';
import { buildImage, cliHas, mountStatus, pushLayout, type TestImage } from './images.js';

const ready = needs('Debian image from a registry', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'], [cliHas('build'), 'ondemand build'],
  [cliHas('push'), 'ondemand push'], [haveCommand('docker-registry'), 'docker-registry']);

const dpkgCount = (root: string): string => execFileSync('chroot', [root, '/bin/sh', '-c', 'dpkg -l | wc -l'], { encoding: 'utf8' }).trim();

describe.skipIf(!ready)('Debian minbase from a registry', () => {
  let h: Harness;
  let reg: TestRegistry;
  let src: { dir: string; remove: () => void };
  let image: TestImage;
  let remote: string;
  let treeProblem: string | undefined;

  beforeAll(async () => {
    h = makeHarness('debian');
    src = makeTempDir('debian-src');
    treeProblem = makeDebianTree(join(src.dir, 'tree'));
    if (treeProblem) return;
    reg = await startRegistry();
    image = await buildImage(h, join(src.dir, 'tree'), join(src.dir, 'layout'), 'min');
    remote = `${reg.host}/debian:min`;
    await pushLayout(h, image.ref, remote);
  }, 1_200_000);
  afterAll(async () => {
    await h.cleanup();
    await reg?.stop();
    src.remove();
  });

  it('runs programs from the lazily mounted image; a second mount fetches nothing', async (ctx) => {
    if (treeProblem) {
      needs('Debian image from a registry', [false, treeProblem]);
      ctx.skip(treeProblem);
    }
    const mp = h.mountpoint('x');
    await h.ok('mount', '--insecure', '--image', remote, mp);
    // The FUSE blob files are opened FOPEN_DIRECT_IO: with a page cache of their own, the kernel's
    // readahead on them ran on into neighbouring files' frames by a timing-dependent amount, and the
    // second mount then fetched a frame the first never read. erofs itself reads them buffered (no
    // `directio`: that would make passthrough reads of complete blobs O_DIRECT).
    const erofs = erofsMount(mp);
    expect(erofs).toBeDefined();
    expect(erofs!.options.split(',')).not.toContain('directio');
    const before = await mountStatus(h, mp);
    execFileSync('chroot', [mp, '/bin/true']);
    const afterTrue = await mountStatus(h, mp);
    const trueBytes = afterTrue.bytesFetched - before.bytesFetched;
    process.stderr.write(`chroot /bin/true fetched ${trueBytes} bytes of a ${image.bytes}-byte image (${((100 * trueBytes) / image.bytes).toFixed(2)} %)\n`);
    expect(trueBytes).toBeLessThan(image.bytes / 10);
    const count = dpkgCount(mp);
    const firstTotal = (await mountStatus(h, mp)).bytesFetched;
    process.stderr.write(`first mount: /bin/true + dpkg -l fetched ${firstTotal} bytes\n`);
    expect(Number(count)).toBeGreaterThan(50);
    expect(count).toBe(dpkgCount(join(src.dir, 'tree')));
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });

    await h.ok('mount', '--insecure', '--image', remote, mp);
    execFileSync('chroot', [mp, '/bin/true']);
    expect(dpkgCount(mp)).toBe(count);
    const again = await mountStatus(h, mp);
    process.stderr.write(`second mount: /bin/true + dpkg -l fetched ${again.bytesFetched} bytes\n`);
    expect(again.bytesFetched).toBe(0);
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  }, 900_000);

  it('fuse-tree: the same image served by our own erofs reader equals its source, and dpkg runs from it', async (ctx) => {
    if (treeProblem) ctx.skip(treeProblem);
    const mp = h.mountpoint('tree');
    const out = await h.ok('mount', '--insecure', '--mode', 'fuse-tree', '--image', remote, mp);
    expect(out).toMatch(/mode fuse-tree/);
    expect(dpkgCount(mp)).toBe(dpkgCount(join(src.dir, 'tree')));
    expect(compareTrees(join(src.dir, 'tree'), mp)).toEqual([]);
    const s = await mountStatus(h, mp);
    process.stderr.write(`fuse-tree of the Debian image: the whole tree compared, ${s.bytesFetched} bytes fetched by this mount\n`);
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  }, 900_000);
});
