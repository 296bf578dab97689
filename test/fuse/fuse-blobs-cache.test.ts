/**
 * fuse-blobs (mounted by the product's transport) over the REAL cache backend (src/cache) and an
 * in-memory counting fetcher: the erofs
 * image's blob is cut into gzip frames like `convert` does, mounted lazily, read partially (only some
 * frames fetched), then prefetched; a new mount of the complete blob uses passthrough and fetches 0.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCache, type Cache } from '../../src/cache/index.js';
import { encodeToc } from '../../src/format/image/toc.js';
import type { BlobDescriptor, BlobToc, FrameEntry } from '../../src/format/image/types.js';
import type { CachedBlob } from '../../src/cache/types.js';
import { fuseBlobsTransport, type ActiveFuseBlobs } from '../../src/transport/fuse-blobs/transport.js';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { mountTransport, mountpoints, tearDownMount, type TransportMount } from '../helpers/transport-mount.js';
import { MemoryFetcher } from '../helpers/blob-fixture.js';
import { makeErofsImage, treeHashes, type ErofsImage } from './erofs-image.js';

const run = promisify(execFile);
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Stores `view` as an ondemand blob: gzip frames, then the TOC. */
function storeBlob(view: Buffer, frameSize: number): { descriptor: BlobDescriptor; toc: BlobToc; stored: Buffer } {
  const frames: FrameEntry[] = [];
  const parts: Buffer[] = [];
  let at = 0;
  for (let off = 0; off < view.length; off += frameSize) {
    const raw = view.subarray(off, Math.min(view.length, off + frameSize));
    const z = gzipSync(raw);
    frames.push({ uncompressedOffset: off, uncompressedSize: raw.length, compressedOffset: at, compressedSize: z.length, digest: sha256(raw) });
    parts.push(z);
    at += z.length;
  }
  const toc: BlobToc = { blobId: sha256(view), uncompressedSize: view.length, frameSize, compression: 'gzip', frames };
  const tocBytes = encodeToc(toc);
  const stored = Buffer.concat([...parts, tocBytes]);
  const descriptor: BlobDescriptor = {
    digest: `sha256:${sha256(stored)}`, size: stored.length, blobId: toc.blobId, uncompressedSize: view.length,
    tocOffset: at, tocSize: tocBytes.length, tocDigest: `sha256:${sha256(tocBytes)}`, compression: 'gzip', frameSize,
  };
  return { descriptor, toc, stored };
}

describe.skipIf(!needs('fuse-blobs over the real cache', [isRoot, 'root'], [haveCommand('mkfs.erofs'), 'mkfs.erofs']))('fuse-blobs over src/cache', () => {
  const tmp = makeTempDir('fuse-blobs-cache');
  const target = join(tmp.dir, 'rootfs');
  const fuseDir = join(tmp.dir, 'fuse');
  let image: ErofsImage;
  let cache: Cache | undefined;
  let current: TransportMount<ActiveFuseBlobs> | undefined;

  function mount(blob: CachedBlob): Promise<TransportMount<ActiveFuseBlobs>> {
    return mountTransport(fuseBlobsTransport, { mountpoint: target, privateDir: fuseDir, bootstrapPath: image.meta, blobs: [blob] });
  }

  beforeAll(async () => {
    mkdirSync(target);
    image = await makeErofsImage(tmp.dir, 8 * 1024 * 1024);
    cache = await openCache({ dir: join(tmp.dir, 'cache') });
  });

  afterEach(async () => {
    const m = current;
    current = undefined;
    await tearDownMount(m, target, fuseDir);
  });

  afterAll(async () => {
    await cache?.close();
    tmp.remove();
  });

  it('fetches lazily, then serves a prefetched blob through passthrough with 0 fetches', async () => {
    const view = readFileSync(image.blob);
    const { descriptor, toc, stored } = storeBlob(view, 64 * 1024);
    const fetcher = new MemoryFetcher({ [descriptor.digest]: stored });
    const blob = await cache!.openBlob(descriptor, { fetcher, toc, image: 'test' });
    expect(blob.isComplete()).toBe(false);

    let m = (current = await mount(blob));
    expect(await run('cat', [join(target, 'a', 'hello')]).then((r) => r.stdout)).toBe('hello\n');
    const lazyBytes = fetcher.bytesFetched;
    expect(lazyBytes).toBeGreaterThan(0);
    expect(lazyBytes).toBeLessThan(stored.length / 4); // a small file costs a few frames, not the blob
    expect(m.active.stats().files.passthroughRequested).toBe(0);
    expect(await treeHashes(target)).toBe(await treeHashes(image.src));
    await m.unmount();
    current = undefined;

    await blob.prefetch();
    expect(blob.isComplete()).toBe(true);
    fetcher.reset();
    await run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
    m = current = await mount(blob);
    await run('diff', ['-r', '--no-dereference', image.src, target]);
    if (m.active.erofs.onLoops) {
      // This kernel's erofs refuses files on a passthrough FUSE mount (a stacked filesystem): over loop
      // devices, the complete blob's loop is switched to the cache file itself, so FUSE sees no open of it.
      console.log('fuse-blobs cache test: erofs over loop devices (this kernel refuses file-backed devices on a passthrough FUSE mount)');
      expect(m.active.stats().session.passthroughOpens).toBe(m.active.stats().session.opens);
    } else {
      expect(m.active.stats().files.passthroughRequested).toBe(1);
      expect(m.active.stats().session.passthroughOpens).toBe(1);
    }
    expect(m.active.stats().files.blobReads).toBe(0);
    expect(fetcher.bytesFetched).toBe(0);
    await m.unmount();
    current = undefined;
    expect(mountpoints()).not.toContain(target);
    expect(mountpoints()).not.toContain(fuseDir);
  });
});
