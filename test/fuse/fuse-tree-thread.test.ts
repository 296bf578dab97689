/**
 * fuse-tree's metadata answered on the FUSE reader thread (src/fuse/reader-metadata.ts), mounted by the
 * product's transport: the tree, names, attributes, links and errors are the same as the source's
 * whether the reader thread or the main thread answers them, and with the thread on, the main thread
 * answers no LOOKUP at all.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fuseTreeTransport, type ActiveFuseTree } from '../../src/transport/fuse-tree/transport.js';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { mountTransport, mountpoints, tearDownMount, type TransportMount } from '../helpers/transport-mount.js';
import { FileBlob } from './file-blob.js';
import { makeErofsImage, treeHashes, treeListing, type ErofsImage } from './erofs-image.js';

const run = promisify(execFile);
const BLOB_ID = 'cd'.repeat(32);

describe.skipIf(!needs('fuse-tree', [isRoot, 'root'], [haveCommand('mkfs.erofs'), 'mkfs.erofs']))('fuse-tree metadata on the reader thread', () => {
  const tmp = makeTempDir('fuse-tree-thread');
  const target = join(tmp.dir, 'rootfs');
  let image: ErofsImage;
  let current: TransportMount<ActiveFuseTree> | undefined;

  beforeAll(async () => {
    mkdirSync(target);
    image = await makeErofsImage(tmp.dir, 256 * 1024);
  });

  afterEach(async () => {
    const m = current;
    current = undefined;
    await tearDownMount(m, target, join(tmp.dir, 'private'));
  });

  afterAll(() => tmp.remove());

  async function mount(threadMetadata: boolean): Promise<TransportMount<ActiveFuseTree>> {
    return (current = await mountTransport(fuseTreeTransport, {
      mountpoint: target, privateDir: join(tmp.dir, 'private'), bootstrapPath: image.meta,
      blobs: [new FileBlob(BLOB_ID, image.blob, true)], fuseReader: { threadMetadata },
    }));
  }

  async function expectSameAsSource(): Promise<void> {
    expect(await treeListing(target)).toBe(await treeListing(image.src));
    expect(await treeHashes(target)).toBe(await treeHashes(image.src));
    // Asynchronous calls only: this process serves the mount (its main thread answers what the reader thread does not).
    expect(await readlink(join(target, 'a', 'b', 'link'))).toBe('../big');
    expect((await readdir(join(target, 'c'))).sort()).toEqual((await readdir(join(image.src, 'c'))).sort());
    // Hard links share one inode, as on the kernel's erofs.
    expect((await lstat(join(target, 'c', 'hard'))).ino).toBe((await lstat(join(target, 'a', 'hello'))).ino);
    await expect(lstat(join(target, 'no-such-file'))).rejects.toThrow(/ENOENT/);
    await expect(readdir(join(target, 'a', 'hello'))).rejects.toThrow(/ENOTDIR/);
    await expect(run('getfattr', ['-n', 'user.none', join(target, 'a', 'hello')])).rejects.toThrow(/No such attribute/);
    expect((await run('stat', ['-f', '-c', '%b %S', target])).stdout.trim()).toMatch(/^\d+ \d+$/);
  }

  it('answers LOOKUP, GETATTR, READDIRPLUS, READLINK, xattrs and STATFS on the thread: the tree equals its source', async () => {
    const m = await mount(true);
    await expectSameAsSource();
    const s = m.active.stats();
    process.stderr.write(`fuse-tree thread metadata: ${s.session.threadMetadata} answered on the reader thread, ${s.files.lookups} LOOKUPs on the main thread\n`);
    // Directories open with no request here (zero-message opendir), so a listing is one or two READDIRPLUS.
    expect(s.session.threadMetadata).toBeGreaterThan(10);
    expect(s.files.lookups).toBe(0);
  });

  it('with the thread told not to, the main thread answers them: the same tree', async () => {
    const m = await mount(false);
    await expectSameAsSource();
    const s = m.active.stats();
    expect(s.session.threadMetadata).toBe(0);
    expect(s.files.lookups).toBeGreaterThan(0);
    expect(s.session.requests).toBeGreaterThan(20);
  });

  it('unmounts leaving nothing', async () => {
    const m = await mount(true);
    current = undefined;
    await m.unmount();
    expect(mountpoints()).not.toContain(target);
  });
});
