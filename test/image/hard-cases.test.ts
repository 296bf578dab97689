/**
 * The hard-case corpus (test/helpers/trees.ts) through `ondemand build`, then judged by the kernel:
 * file-backed and loop-device erofs mounts must equal the source in every field, fsck.erofs must
 * pass, and `ondemand export` / `check` / `inspect` must agree.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { statSync } from 'node:fs';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { makeHardCaseTree, GIB } from '../helpers/trees.js';
import type { ResolvedImage } from '../../src/resolve/index.js';
import { openImage } from '../../src/reader/open-image.js';
import { fsckErofs, mountFileBacked, mountLoop, type LocalImageFiles } from './mounts.js';
import { ondemand } from './cli.js';
import { buildImage, expectExportEqualsSource, expectMountEqualsSource } from './round-trip.js';

const ok = needs('image hard cases', [isRoot, 'root'], [haveCommand('fsck.erofs'), 'fsck.erofs'], [haveCommand('losetup'), 'losetup']);

describe.skipIf(!ok)('hard-case tree round trip', () => {
  let tmp: { dir: string; remove: () => void };
  let src: string;
  let resolved: ResolvedImage;
  let files: LocalImageFiles;
  const cleanups: (() => void)[] = [];

  beforeAll(async () => {
    tmp = makeTempDir('image-hard');
    src = join(tmp.dir, 'src');
    makeHardCaseTree(src);
    ({ resolved, files } = await buildImage(src, `oci:${join(tmp.dir, 'layout')}:hard`, tmp.dir, ['--json']));
  }, 600_000);

  afterAll(async () => {
    for (const c of cleanups.reverse()) c();
    await resolved?.fetcher.close();
    tmp?.remove();
  });

  it('mounts file-backed (mount(2) with device=) and equals the source', () => {
    expectMountEqualsSource(mountFileBacked, files, join(tmp.dir, 'mnt-file'), src);
  }, 300_000);

  it('mounts through loop devices and equals the source', () => {
    expectMountEqualsSource(mountLoop, files, join(tmp.dir, 'mnt-loop'), src);
  }, 300_000);

  it('passes fsck.erofs with the blob as --device', () => {
    expect(() => fsckErofs(files)).not.toThrow();
  }, 600_000);

  it('exports with the user-space reader to a tree equal to the source', () => {
    expectExportEqualsSource(`oci:${join(tmp.dir, 'layout')}:hard`, join(tmp.dir, 'export'), src);
  }, 300_000);

  it('check verifies everything; inspect counts the tree', () => {
    const ref = `oci:${join(tmp.dir, 'layout')}:hard`;
    const c = ondemand(['check', ref]);
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(/^ok: 1 blobs/);
    const i = ondemand(['inspect', ref, '--json']);
    expect(i.code).toBe(0);
    const info = JSON.parse(i.stdout) as { tree: { files: number; dirs: number; hardLinks: number }; blobs: { frames: number }[] };
    expect(info.tree.files).toBeGreaterThan(20000);
    expect(info.tree.hardLinks).toBe(3);
    expect(info.blobs[0]!.frames).toBeGreaterThan(0);
  }, 300_000);

  it('stores holes as holes, dedups identical chunks, tags the device with the blob id', async () => {
    const opened = await openImage(resolved);
    const { reader } = opened;
    const blob = resolved.image.blobs[0]!;
    expect(reader.superblock.devices.map((d) => d.tag)).toEqual([blob.blobId]);
    // 5 GiB apparent, a few KiB stored: holes cost nothing.
    expect(blob.uncompressedSize).toBeLessThan(64 << 20);
    const big = reader.resolve('/sparse/five-gib')!;
    expect(reader.inode(big).size).toBe(5 * GIB);
    expect(reader.fileExtents(big).filter((e) => !e.hole).reduce((n, e) => n + e.length, 0)).toBe(2 << 20);
    const one = reader.fileExtents(reader.resolve('/dedup/one')!);
    const two = reader.fileExtents(reader.resolve('/dedup/two')!);
    expect(two).toEqual(one);
    const prefix = reader.fileExtents(reader.resolve('/dedup/prefix')!);
    expect(prefix[0]).toMatchObject({ device: 1, deviceOffset: (one[0] as { deviceOffset: number }).deviceOffset });
    expect(statSync(join(src, 'sparse', 'five-gib')).blocks).toBeLessThan(1000);
  }, 120_000);
});
