/**
 * The reader thread's fast path over the REAL cache: a fuse-blobs mount made by the product's
 * transport without passthrough (as on a kernel without it), whose FUSE blob file (under the erofs
 * mount) is read with O_DIRECT by child processes (every read is a READ).
 * Proves: present ranges are answered on the reader thread with the right bytes and counted as cache
 * hits; a range with a missing frame goes to CachedBlob.read and is fetched (never zeros); evicted
 * frames are fetched again; a slow miss does not hold up fast reads;
 * a successor session on the same connection (the transport's reattach, as after a worker restart)
 * serves fast reads too. Reads of
 * 64 KiB and more are answered with splice (file -> pipe -> /dev/fuse) unless spliceMinBytes is 0.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCache, type Cache } from '../../src/cache/index.js';
import type { CachedBlob } from '../../src/cache/types.js';
import type { BlobDescriptor, BlobToc, FrameEntry } from '../../src/format/image/types.js';
import type { BlobFetcher, ByteRange, FetchOptions } from '../../src/fetch/types.js';
import type { FuseSessionStats } from '../../src/fuse/types.js';
import { pipeCapacity } from '../../src/native/pipe.js';
import type { FuseBlobsStats } from '../../src/transport/fuse-blobs/filesystem.js';
import { fuseBlobsTransport, type ActiveFuseBlobs } from '../../src/transport/fuse-blobs/transport.js';
import { MemoryFetcher, fixtureContent } from '../helpers/blob-fixture.js';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import {
  WITHOUT_PASSTHROUGH, mountTransport, mountpoints, reattachTransport, tearDownMount, type TransportMount,
} from '../helpers/transport-mount.js';

const run = promisify(execFile);

/** Pipe fds this process holds that were enlarged to 1 MiB or more: the readers' splice pipes. */
function splicePipes(): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith('pipe:') && pipeCapacity(Number(fd)) >= 1 << 20;
    } catch {
      return false;
    }
  }).length;
}
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const FRAME = 64 * 1024;
const FRAMES = 40;

/** The view stored uncompressed in FRAME-sized frames (stored bytes = the view). */
function storeBlob(view: Buffer): { descriptor: BlobDescriptor; toc: BlobToc } {
  const frames: FrameEntry[] = [];
  for (let off = 0; off < view.length; off += FRAME) {
    const raw = view.subarray(off, Math.min(view.length, off + FRAME));
    frames.push({ uncompressedOffset: off, uncompressedSize: raw.length, compressedOffset: off, compressedSize: raw.length, digest: sha256(raw) });
  }
  const blobId = sha256(view);
  const toc: BlobToc = { blobId, uncompressedSize: view.length, frameSize: FRAME, compression: 'none', frames };
  const descriptor: BlobDescriptor = {
    digest: `sha256:${blobId}`, size: view.length, blobId, uncompressedSize: view.length, tocOffset: view.length, tocSize: 0,
    tocDigest: `sha256:${'0'.repeat(64)}`, compression: 'none', frameSize: FRAME,
  };
  return { descriptor, toc };
}

/** A fetcher whose requests wait until `open()` while `held` (to keep a miss pending). */
class GatedFetcher implements BlobFetcher {
  readonly source = 'gated';
  held = false;
  private waiters: (() => void)[] = [];
  constructor(private readonly inner: MemoryFetcher) {}
  async fetchRange(digest: string, range: ByteRange, options?: FetchOptions): Promise<Buffer> {
    if (this.held) await new Promise<void>((r) => this.waiters.push(r));
    return this.inner.fetchRange(digest, range, options);
  }
  fetchBlob(digest: string, options?: FetchOptions): Promise<Buffer> {
    return this.inner.fetchBlob(digest, options);
  }
  open(): void {
    this.held = false;
    for (const w of this.waiters.splice(0)) w();
  }
  async close(): Promise<void> {}
}

describe.skipIf(!needs('FUSE fast reads over the real cache', [isRoot, 'root'], [haveCommand('dd'), 'dd'], [haveCommand('mkfs.erofs'), 'mkfs.erofs'])).each([
  { copyThreads: 0, spliceMinBytes: 64 * 1024 },
  { copyThreads: 1, spliceMinBytes: 64 * 1024 },
  { copyThreads: 3, spliceMinBytes: 64 * 1024 },
  { copyThreads: 0, spliceMinBytes: 0 },
])('FUSE reader fast path, $copyThreads copy threads, splice from $spliceMinBytes bytes', ({ copyThreads, spliceMinBytes }) => {
  const tmp = makeTempDir('fuse-fast-read');
  const fuseDir = join(tmp.dir, 'fuse');
  const target = join(tmp.dir, 'rootfs');
  // One file whose bytes mkfs.erofs stores as the blob (chunks of whole blocks): a short last frame.
  const view = fixtureContent(FRAMES * FRAME - 4096, 7);
  const { descriptor, toc } = storeBlob(view);
  const memory = new MemoryFetcher({ [descriptor.digest]: view });
  const fetcher = new GatedFetcher(memory);
  let cache: Cache;
  let blob: CachedBlob;
  let mounted: TransportMount<ActiveFuseBlobs> | undefined;
  let successor: TransportMount<ActiveFuseBlobs> | undefined;
  let file: string;
  /** The session's and the filesystem's counters. */
  const stats = (m = mounted!): { fuse: FuseSessionStats; fs: FuseBlobsStats } => {
    const s = m.active.stats();
    return { fuse: s.session, fs: s.files };
  };
  let unpin: (() => void) | undefined;

  /** Bytes [offset, offset+length) of the blob file read by a child with O_DIRECT (each read a READ). */
  async function readDirect(offset: number, length: number, bs = 4096): Promise<Buffer> {
    const { stdout } = await run('dd', [`if=${file}`, `bs=${bs}`, `skip=${offset}`, `count=${Math.ceil(length / bs)}`, 'iflag=direct,skip_bytes', 'status=none'], { encoding: 'buffer', maxBuffer: 1 << 26 });
    return stdout;
  }

  beforeAll(async () => {
    const src = join(tmp.dir, 'src');
    mkdirSync(src);
    mkdirSync(target);
    writeFileSync(join(src, 'data'), view);
    const meta = join(tmp.dir, 'meta.img');
    const blobFile = join(tmp.dir, 'blob.img');
    await run('mkfs.erofs', ['--quiet', '--chunksize=1048576', `--blobdev=${blobFile}`, meta, src]);
    expect(readFileSync(blobFile).equals(view)).toBe(true);
    cache = await openCache({ dir: join(tmp.dir, 'cache') });
    blob = await cache.openBlob(descriptor, { fetcher, toc, image: 'test' });
    unpin = blob.pin(); // as a mount does: the cache closes unpinned idle blobs
    mounted = await mountTransport(fuseBlobsTransport, {
      mountpoint: target, privateDir: fuseDir, bootstrapPath: meta, blobs: [blob], features: WITHOUT_PASSTHROUGH,
      fuseReader: { copyThreads, spliceMinBytes },
    });
    file = join(fuseDir, blob.blobId);
  });

  afterEach(() => fetcher.open());

  afterAll(async () => {
    fetcher.open();
    await tearDownMount(successor ?? mounted, target, fuseDir);
    unpin?.();
    await cache?.close();
    tmp.remove();
  });

  it('answers present ranges on the reader thread with the cached bytes, counted as cache hits', async () => {
    await blob.prefetch({ ranges: [{ offset: 0, length: 8 * FRAME }], rangesOnly: true });
    await blob.idle?.();
    memory.reset();
    const before = { blob: blob.stats(), ...stats() };
    const got = await readDirect(0, 8 * FRAME, FRAME);
    expect(sha256(got)).toBe(sha256(view.subarray(0, 8 * FRAME)));
    const large = await readDirect(2 * FRAME, 4 * FRAME, 4 * FRAME); // one 256 KiB READ (a copy thread's, if any)
    expect(large.equals(view.subarray(2 * FRAME, 6 * FRAME))).toBe(true);
    const small = await readDirect(3 * FRAME + 4096, 4096);
    expect(small.equals(view.subarray(3 * FRAME + 4096, 3 * FRAME + 8192))).toBe(true);
    const after = { blob: blob.stats(), ...stats() };
    const fast = (after.fuse.fastReads ?? 0) - (before.fuse.fastReads ?? 0);
    expect(fast).toBeGreaterThanOrEqual(10);
    expect(after.blob.hits - before.blob.hits).toBe(fast); // every fast READ is a cache hit
    expect(after.blob.misses).toBe(before.blob.misses);
    expect(after.fs.blobReads - before.fs.blobReads).toBe(fast);
    expect(memory.bytesFetched).toBe(0);
  });

  it('sends a range with a missing frame to the cache, which fetches it (never zeros)', async () => {
    memory.reset();
    const before = blob.stats();
    const fastBefore = stats().fuse.fastReads ?? 0;
    // Frames 7 (present) and 8 (missing) in one READ.
    const got = await readDirect(7 * FRAME, 2 * FRAME, 2 * FRAME);
    expect(sha256(got)).toBe(sha256(view.subarray(7 * FRAME, 9 * FRAME)));
    expect(memory.bytesFetched).toBeGreaterThan(0);
    expect(blob.stats().misses).toBe(before.misses + 1);
    expect(stats().fuse.fastReads).toBe(fastBefore);
    // Now present: served on the reader thread.
    await blob.idle?.();
    expect(blob.hasFrame?.(8)).toBe(true);
    const again = await readDirect(8 * FRAME, FRAME, FRAME);
    expect(again.equals(view.subarray(8 * FRAME, 9 * FRAME))).toBe(true);
    expect(stats().fuse.fastReads).toBe(fastBefore + 1);
    // The short tail of the blob: missing, fetched, right length.
    const tail = await readDirect((FRAMES - 1) * FRAME, FRAME, FRAME);
    expect(tail.equals(view.subarray((FRAMES - 1) * FRAME))).toBe(true);
  });

  it('a pending miss holds up no fast read; its reader can be killed and the miss completes later', async () => {
    fetcher.held = true;
    const child = spawn('dd', [`if=${file}`, `bs=${FRAME}`, 'skip=20', 'count=1', 'iflag=direct', 'status=none', 'of=/dev/null'], { stdio: 'ignore' });
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    for (let i = 0; i < 100 && stats().fuse.inFlight === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(stats().fuse.inFlight).toBe(1);
    const got = await readDirect(2 * FRAME, FRAME, FRAME); // present: answered while the miss waits
    expect(got.equals(view.subarray(2 * FRAME, 3 * FRAME))).toBe(true);
    expect(stats().fuse.inFlight).toBe(1);
    child.kill('SIGKILL');
    fetcher.open();
    await exited;
    for (let i = 0; i < 100 && stats().fuse.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(stats().fuse.inFlight).toBe(0);
    await blob.idle?.();
    expect(blob.hasFrame?.(20)).toBe(true);
  });

  it('never serves evicted frames from the data file: they are fetched again', async () => {
    await blob.prefetch();
    await blob.idle?.();
    expect(blob.isComplete()).toBe(true);
    expect((await readDirect(30 * FRAME, FRAME, FRAME)).equals(view.subarray(30 * FRAME, 31 * FRAME))).toBe(true);
    unpin?.(); // pinned blobs are never evicted
    const gc = await cache.gc!({ maxSize: 0 });
    unpin = blob.pin();
    expect(gc.evictedBlobs).toContain(blob.blobId);
    expect(blob.hasFrame?.(30)).toBe(false);
    memory.reset();
    const fastBefore = stats().fuse.fastReads ?? 0;
    const got = await readDirect(30 * FRAME, FRAME, FRAME);
    expect(got.equals(view.subarray(30 * FRAME, 31 * FRAME))).toBe(true);
    expect(memory.bytesFetched).toBeGreaterThan(0);
    expect(stats().fuse.fastReads).toBe(fastBefore);
  });

  it('small READs of four readers at once (held for an idle copy thread while another is read) give the right bytes', async () => {
    await blob.prefetch();
    await blob.idle?.();
    const before = stats().fuse.fastReads ?? 0;
    // Each child: 200 random 4 KiB pages with O_DIRECT (every one a READ), printed as "offset sha256".
    const reader = `
import hashlib, mmap, os, random, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT); buf = mmap.mmap(-1, 4096); r = random.Random(int(sys.argv[2]))
for _ in range(200):
    off = r.randrange(0, os.fstat(fd).st_size // 4096) * 4096
    if os.preadv(fd, [buf], off) != 4096: sys.exit('short read at %d' % off)
    print(off, hashlib.sha256(buf).hexdigest())
`;
    const outs = await Promise.all([1, 2, 3, 4].map((seed) => run('python3', ['-c', reader, file, String(seed)])));
    const lines = outs.flatMap((o) => o.stdout.trim().split('\n'));
    expect(lines).toHaveLength(800);
    for (const line of lines) {
      const [off, digest] = line.split(' ');
      expect(digest, `page at ${off}`).toBe(sha256(view.subarray(Number(off), Number(off) + 4096)));
    }
    expect((stats().fuse.fastReads ?? 0) - before).toBeGreaterThanOrEqual(800);
  });

  it('a successor session on the same connection (fromFd) answers fast reads too', async () => {
    await blob.prefetch({ ranges: [{ offset: 0, length: 4 * FRAME }], rangesOnly: true });
    await blob.idle?.();
    // Each reader and copy thread has a splice pipe, closed when it stops (fds outlive a worker thread).
    expect(splicePipes()).toBe(spliceMinBytes > 0 ? 2 * (1 + copyThreads) : 0);
    await mounted!.active.stop(); // what a dying worker leaves: the kernel objects, held by their owner
    expect(splicePipes()).toBe(0);
    successor = await reattachTransport(fuseBlobsTransport, mounted!);
    const first = await readDirect(0, FRAME, FRAME); // the successor learns the source from this READ
    expect(first.equals(view.subarray(0, FRAME))).toBe(true);
    const second = await readDirect(FRAME, FRAME, FRAME);
    expect(second.equals(view.subarray(FRAME, 2 * FRAME))).toBe(true);
    expect(stats(successor).fuse.fastReads).toBeGreaterThanOrEqual(1);
    await successor.unmount();
    expect(mountpoints()).not.toContain(fuseDir);
    expect(await successor.active.whenEnded()).toBe(19);
  });
});
