/**
 * fuse-blobs end to end, mounted by the product's transport (fuseBlobsTransport with in-process kernel
 * objects): a real erofs image (bootstrap + one blob) served through FUSE, the kernel's erofs mounted
 * on top, in each arrangement the daemon makes (features as on kernels without passthrough or without
 * file-backed erofs). Proves the tree is identical to the source, that holes
 * are read through CachedBlob, that only complete blobs get passthrough, and that unmount leaves no
 * mount and no loop device behind.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Features } from '../../src/transport/kernel-features.js';
import { fuseBlobsTransport, type ActiveFuseBlobs } from '../../src/transport/fuse-blobs/transport.js';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import {
  WITHOUT_FILE_BACKED_EROFS, WITHOUT_PASSTHROUGH, mountTransport, mountpoints, tearDownMount, type TransportMount,
} from '../helpers/transport-mount.js';
import { withoutCacheDrops } from '../helpers/page-cache.js';
import { FileBlob } from './file-blob.js';
import { makeErofsImage, treeHashes, treeListing, type ErofsImage } from './erofs-image.js';

const run = promisify(execFile);
const BLOB_ID = 'ab'.repeat(32);

async function loopsOn(path: string): Promise<string> {
  const { stdout } = await run('losetup', ['-a']);
  return stdout.split('\n').filter((l) => l.includes(path)).join('\n');
}

describe.skipIf(!needs('fuse-blobs + erofs', [isRoot, 'root'], [haveCommand('mkfs.erofs'), 'mkfs.erofs'], [haveCommand('losetup'), 'losetup']))('fuse-blobs with kernel erofs on top', () => {
  const tmp = makeTempDir('fuse-blobs');
  const target = join(tmp.dir, 'rootfs');
  const fuseDir = join(tmp.dir, 'fuse');
  let image: ErofsImage;
  let expectedHashes: string;
  let expectedListing: string;
  let current: TransportMount<ActiveFuseBlobs> | undefined;

  function mount(blob: FileBlob, features: Partial<Features> = {}, mountpoint = target): Promise<TransportMount<ActiveFuseBlobs>> {
    return mountTransport(fuseBlobsTransport, { mountpoint, privateDir: fuseDir, bootstrapPath: image.meta, blobs: [blob], features });
  }

  beforeAll(async () => {
    mkdirSync(target);
    image = await makeErofsImage(tmp.dir);
    expectedHashes = await treeHashes(image.src);
    expectedListing = await treeListing(image.src);
  });

  afterEach(async () => {
    const m = current;
    current = undefined;
    await tearDownMount(m, target, fuseDir);
  });

  afterAll(() => tmp.remove());

  async function expectSameTree(): Promise<void> {
    await run('diff', ['-r', '--no-dereference', image.src, target]);
    expect(await treeHashes(target)).toBe(expectedHashes);
    expect(await treeListing(target)).toBe(expectedListing);
  }

  async function expectAllGone(m: TransportMount<ActiveFuseBlobs>): Promise<void> {
    await m.unmount();
    expect(mountpoints()).not.toContain(target);
    expect(mountpoints()).not.toContain(fuseDir);
    for (let t = 0; t < 40 && (await loopsOn(tmp.dir)) !== ''; t++) await new Promise((r) => setTimeout(r, 50));
    expect(await loopsOn(tmp.dir)).toBe('');
    expect(await m.active.whenEnded()).toBe(19);
  }

  it('without passthrough: everything through FUSE, every blob byte read through CachedBlob', async () => {
    const blob = new FileBlob(BLOB_ID, image.blob, false);
    const m = (current = await mount(blob, WITHOUT_PASSTHROUGH));
    expect(m.active.erofs.source).toBe(join(fuseDir, 'bootstrap'));
    expect(m.active.erofs.devices).toEqual([join(fuseDir, BLOB_ID)]);
    await run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
    await expectSameTree();
    // The kernel's read-ahead READs can still be in flight after the last read returned: counted by
    // FileBlob when they start, by the filesystem when they end.
    for (let i = 0; i < 200 && m.active.stats().session.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 10));
    const s = m.active.stats();
    expect(s.session.inFlight).toBe(0);
    expect(s.connection?.passthrough).toBe(false);
    expect(s.session.passthroughOpens).toBe(0);
    expect(blob.reads).toBeGreaterThan(0);
    expect(s.files.blobReads).toBe(blob.reads);
    expect(s.files.blobBytesRead).toBeGreaterThanOrEqual(3 * 1024 * 1024);
    expect(s.files.bootstrapReads).toBeGreaterThan(0);
    current = undefined;
    await expectAllGone(m);
  });

  it('without passthrough, blob complete: opened cached, so a second read after erofs drops its pages sends no READ', async () => {
    const blob = new FileBlob(BLOB_ID, image.blob, true);
    const m = (current = await mount(blob, WITHOUT_PASSTHROUGH));
    await run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
    await expectSameTree();
    const first = m.active.stats().files;
    expect(first.pageCacheOpens).toBe(1);
    expect(first.cachedOpens).toBe(0);
    expect(first.blobReads).toBeGreaterThan(0);
    const [before, after] = await withoutCacheDrops(async () => {
      const readsBefore = m.active.stats().files.blobReads;
      // Only erofs's pages go (as under memory pressure); the FUSE blob file keeps its page cache.
      await run('sh', ['-c', `find ${target} -type f -exec dd if={} iflag=nocache count=0 status=none \\;`]);
      await expectSameTree();
      return [readsBefore, m.active.stats().files.blobReads];
    });
    expect(after).toBe(before);
    current = undefined;
    await expectAllGone(m);
  });

  /**
   * Passthrough makes the FUSE mount a stacked filesystem, and newer kernels' erofs refuses files there
   * as file-backed devices (EINVAL): the transport then mounts over loop devices on the same files.
   * Returns whether it did (said in the output); the bootstrap is then read through FUSE too.
   */
  function arrangement(m: TransportMount<ActiveFuseBlobs>): boolean {
    if (!m.active.erofs.onLoops) {
      expect(m.active.erofs.source).toBe(image.meta);
      return false;
    }
    console.log('fuse-blobs test: this kernel\'s erofs refuses files on a passthrough FUSE mount; the transport mounted over loop devices');
    expect(m.active.erofs.source).toMatch(/^\/dev\/loop\d+$/);
    return true;
  }

  it('passthrough negotiated, blob complete: local bootstrap as primary (or loops), blob opened with passthrough, no READs', async () => {
    const blob = new FileBlob(BLOB_ID, image.blob, true);
    const m = (current = await mount(blob));
    expect(m.active.stats().connection?.passthrough).toBe(true);
    const onLoops = arrangement(m);
    await run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
    await expectSameTree();
    const s = m.active.stats();
    if (onLoops) {
      // Bootstrap and blob behind loops (and the blob once more for the refused file-backed attempt): every open passthrough.
      expect(s.session.passthroughOpens).toBeGreaterThanOrEqual(2);
      expect(s.session.passthroughOpens).toBe(s.session.opens);
    } else {
      expect(s.files.passthroughRequested).toBe(1);
      expect(s.session.passthroughOpens).toBe(1);
    }
    expect(s.files.blobReads).toBe(0);
    expect(blob.reads).toBe(0);
    current = undefined;
    await expectAllGone(m);
  });

  it('passthrough negotiated, blob with holes: never passthrough, reads go through CachedBlob', async () => {
    const blob = new FileBlob(BLOB_ID, image.blob, false);
    const m = (current = await mount(blob));
    expect(m.active.stats().connection?.passthrough).toBe(true);
    const onLoops = arrangement(m);
    // What was opened with passthrough at mount: nothing, or the bootstrap behind its loop.
    const atMount = m.active.stats();
    if (!onLoops) expect(atMount.files.passthroughRequested).toBe(0);
    await run('cat', [join(target, 'a', 'hello')]);
    const afterOne = blob.reads;
    expect(afterOne).toBeGreaterThan(0);
    await expectSameTree();
    const s = m.active.stats();
    expect(s.files.passthroughRequested).toBe(atMount.files.passthroughRequested);
    expect(s.session.passthroughOpens).toBe(atMount.session.passthroughOpens);
    expect(s.files.cachedOpens).toBe(onLoops ? atMount.files.cachedOpens : 1);
    expect(blob.reads).toBeGreaterThan(afterOne);
    // The blob completes while erofs holds it open without passthrough. That open is FOPEN_DIRECT_IO,
    // which does not put the inode in caching mode, so a new open gets passthrough.
    blob.present = true;
    const { stdout } = await run('sh', ['-c', `sha256sum < ${join(fuseDir, BLOB_ID)}`]);
    const { stdout: want } = await run('sh', ['-c', `sha256sum < ${image.blob}`]);
    expect(stdout).toBe(want);
    expect(m.active.stats().files.passthroughRequested).toBe(atMount.files.passthroughRequested + 1);
    expect(m.active.stats().session.passthroughOpens).toBe(atMount.session.passthroughOpens + 1);
    await expectSameTree(); // erofs's own open still reads through READs
    current = undefined;
    await expectAllGone(m);
  });

  it('loop arrangement (passthrough, complete blob): loop devices made and cleared', async () => {
    const blob = new FileBlob(BLOB_ID, image.blob, true);
    const m = (current = await mount(blob, WITHOUT_FILE_BACKED_EROFS));
    expect(m.kernel.objects.filter((o) => o.kind === 'loop')).toHaveLength(2);
    expect(m.active.erofs.source).toMatch(/^\/dev\/loop\d+$/);
    // The bootstrap's loop reads its FUSE file (opened with passthrough); the complete blob's loop
    // reads the blob's file itself from the start.
    expect(await loopsOn(fuseDir)).not.toBe('');
    expect(await loopsOn(image.blob)).not.toBe('');
    await expectSameTree();
    expect(m.active.stats().session.passthroughOpens).toBe(1);
    expect(m.active.stats().blobsDirect).toBe(1);
    current = undefined;
    await expectAllGone(m);
  });

  it('a failing erofs mount unwinds the FUSE mount', async () => {
    const blob = new FileBlob(BLOB_ID, image.blob, false);
    await expect(mount(blob, {}, join(tmp.dir, 'no-such-dir'))).rejects.toThrow(/cannot mount erofs/);
    expect(mountpoints()).not.toContain(fuseDir);
  });
});
