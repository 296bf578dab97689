/**
 * Several blobs (what `ondemand convert` makes, one per source layer): files name their blob, dedup
 * points across blobs, empty blobs are dropped, and the kernel mounts the result with one device= per
 * blob. Also: the local fetcher's range/verify contract and the plain-bootstrap resolver.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { bufferContent, type SourceDir, type SourceNode } from '../../src/build/source.js';
import { buildImage } from '../../src/build/builder.js';
import { storeInLayout } from '../../src/build/to-layout.js';
import { resolveImage, type ResolvedImage } from '../../src/resolve/index.js';
import { openImage } from '../../src/reader/open-image.js';
import { LocalBlobFetcher } from '../../src/fetch/local.js';
import { FetchError, IntegrityError, NotFoundError } from '../../src/util/errors.js';
import { materializeImage, mountFileBacked, type LocalImageFiles } from './mounts.js';

const meta = { perm: 0o644, uid: 1, gid: 2, mtime: 1_650_000_000n, mtimeNsec: 42, xattrs: [] };
const pattern = (size: number, seed: number): Buffer => Buffer.from(Array.from({ length: size }, (_, i) => (i * 31 + seed * 7 + (i >> 12)) & 0xff));

describe('multi-blob images', () => {
  let tmp: { dir: string; remove: () => void };
  let resolved: ResolvedImage;
  let files: LocalImageFiles;
  const shared = pattern(1 << 20, 9);

  beforeAll(async () => {
    tmp = makeTempDir('image-multi');
    const f = (bytes: Buffer, blob: number): SourceNode => ({ kind: 'file', ...meta, content: bufferContent(bytes), blob });
    const root: SourceDir = { kind: 'dir', ...meta, perm: 0o755, entries: [
      { name: Buffer.from('layer0-file'), node: f(Buffer.concat([shared, pattern(5000, 1)]), 0) },
      { name: Buffer.from('layer2-file'), node: f(Buffer.concat([pattern(300_000, 2), Buffer.alloc(8192)]), 2) },
      { name: Buffer.from('layer2-dup'), node: f(shared, 2) },
    ] };
    mkdirSync(join(tmp.dir, 'work'));
    const built = await buildImage(root, { workDir: join(tmp.dir, 'work'), blobCount: 3, chunkSize: 1 << 20, frameSize: 64 << 10, compression: 'gzip' });
    expect(built.blobs).toHaveLength(2); // blob 1 got nothing and is dropped
    expect(built.stats.dedupedChunks).toBe(1);
    await storeInLayout(built, join(tmp.dir, 'layout'), 'multi');
    resolved = await resolveImage(`oci:${join(tmp.dir, 'layout')}:multi`);
    files = await materializeImage(resolved, join(tmp.dir, 'local'));
  });

  afterAll(async () => {
    await resolved?.fetcher.close();
    tmp?.remove();
  });

  it('maps each file to its blob and dedups across blobs', async () => {
    const { reader } = await openImage(resolved);
    expect(reader.superblock.devices.map((d) => d.tag)).toEqual(resolved.image.blobs.map((b) => b.blobId));
    const dup = reader.fileExtents(reader.resolve('/layer2-dup')!);
    expect(dup).toEqual([{ fileOffset: 0, length: 1 << 20, hole: false, device: 1, deviceOffset: 0 }]);
    const own = reader.fileExtents(reader.resolve('/layer2-file')!);
    expect(own[0]).toMatchObject({ device: 2, deviceOffset: 0 });
  });

  it('stores a chunk shared across layers in the lowest layer, whatever the tree order', async () => {
    const f = (bytes: Buffer, blob: number): SourceNode => ({ kind: 'file', ...meta, content: bufferContent(bytes), blob });
    // 'a-upper' walks first but belongs to the upper blob: the shared chunk must still go to blob 0.
    const root: SourceDir = { kind: 'dir', ...meta, perm: 0o755, entries: [
      { name: Buffer.from('a-upper'), node: f(shared, 1) },
      { name: Buffer.from('b-lower'), node: f(shared, 0) },
    ] };
    const work = join(tmp.dir, 'order-work');
    mkdirSync(work);
    const built = await buildImage(root, { workDir: work, blobCount: 2, chunkSize: 1 << 20, compression: 'none', keepEmptyBlobs: true });
    expect(built.blobs.map((b) => b.descriptor.uncompressedSize)).toEqual([1 << 20, 0]);
    expect(built.stats.dedupedChunks).toBe(1);
  });

  it.skipIf(!needs('multi-blob kernel mount', [isRoot, 'root']))('mounts with one device= per blob and reads back every byte', () => {
    const mnt = join(tmp.dir, 'mnt');
    const unmount = mountFileBacked(files, mnt);
    try {
      expect(readFileSync(join(mnt, 'layer0-file')).equals(Buffer.concat([shared, pattern(5000, 1)]))).toBe(true);
      expect(readFileSync(join(mnt, 'layer2-file')).equals(Buffer.concat([pattern(300_000, 2), Buffer.alloc(8192)]))).toBe(true);
      expect(readFileSync(join(mnt, 'layer2-dup')).equals(shared)).toBe(true);
    } finally {
      unmount();
    }
  });

  it('resolves the materialised bootstrap + blob files as a plain local image', async () => {
    const plain = await resolveImage(files.bootstrap, { blobs: files.blobs });
    try {
      expect(plain.image.blobs.map((b) => b.blobId)).toEqual(resolved.image.blobs.map((b) => b.blobId));
      const { reader, devices } = await openImage(plain);
      const bytes = await reader.readFile(reader.resolve('/layer2-dup')!, 0, 1 << 20, devices);
      expect(bytes.equals(shared)).toBe(true);
      await expect(resolveImage(files.bootstrap, { blobs: [files.blobs[1]!, files.blobs[0]!] })).rejects.toThrow(IntegrityError);
      await expect(resolveImage(files.bootstrap, { blobs: [files.blobs[0]!] })).rejects.toThrow(/2 blob device/);
    } finally {
      await plain.fetcher.close();
    }
  });

  it('local fetcher: exact ranges, verified whole blobs, typed errors', async () => {
    const path = join(tmp.dir, 'x.bin');
    writeFileSync(path, 'hello world');
    const good = 'sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9';
    const wrong = 'sha256:' + 'a'.repeat(64);
    const f = LocalBlobFetcher.forFiles(new Map([[good, path], [wrong, path]]));
    try {
      expect((await f.fetchRange(good, { offset: 6, length: 5 })).toString()).toBe('world');
      expect((await f.fetchBlob(good)).toString()).toBe('hello world');
      await expect(f.fetchRange(good, { offset: 8, length: 5 })).rejects.toThrow(FetchError);
      await expect(f.fetchBlob(wrong)).rejects.toThrow(IntegrityError);
      await expect(f.fetchBlob('sha256:' + 'b'.repeat(64))).rejects.toThrow(NotFoundError);
    } finally {
      await f.close();
    }
  });
});
