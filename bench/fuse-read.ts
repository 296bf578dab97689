/**
 * Read throughput of a 1 GiB file through erofs over fuse-blobs, without and with FUSE passthrough,
 * against the same image mounted from local files (file-backed erofs), side by side in one run.
 *
 * "warm": the ondemand cache (src/cache, the real one) holds the whole blob (uncompressed 1 MiB frames,
 * fetched from the local blob file by prefetch before measuring) but the page cache is cold.
 *   warm-disk: drop_caches=3 before every measurement (the data files too: disk-bound, noisy on a
 *              shared disk).
 *   warm-mem:  drop_caches=3, then the local blob file and the cache data file are read back into the
 *              page cache, so erofs and FUSE page caches are cold but no case waits for the disk
 *              (measures our overhead).
 *   seq:  dd bs=1M of the whole file in a child process.
 *   rand: a child node process doing 4 KiB preads at random 4 KiB-aligned offsets (fixed seed,
 *         xorshift32: nearly all distinct pages).
 * Cases: local (file-backed erofs on the local files), fuse (erofs over fuse-blobs, no passthrough:
 * present frames answered on the FUSE reader thread), fuse-2t (same plus one thread copying large READs;
 * only when named in `cases`), fuse-main (same, fast path off: every READ
 * through the main thread and CachedBlob.read), fuse-pt (FUSE passthrough).
 * Each case runs ROUNDS times interleaved; the best run counts.
 *   make build && node dist/bench/fuse-read.js [sizeMiB=1024] [randReads=20000] [rounds=2] [fuseReadAheadKb=1024] [modes=disk,mem] [cases=local,fuse,fuse-main,fuse-pt]
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { FuseBlobsMount } from '../src/transport/fuse-blobs/mount.js';
import { mountAsync, umount2Async } from '../src/native/fuse.js';
import { MNT_DETACH, MS_RDONLY, umount2 } from '../src/native/libc.js';
import { openCache } from '../src/cache/index.js';
import type { CachedBlob } from '../src/cache/types.js';
import type { BlobDescriptor, BlobToc, FrameEntry } from '../src/format/image/types.js';
import type { BlobFetcher, ByteRange } from '../src/fetch/types.js';

const run = promisify(execFile);
const sizeMiB = Number(process.argv[2] ?? 1024);
const randReads = Number(process.argv[3] ?? 20000);
const rounds = Number(process.argv[4] ?? 2);
/** read_ahead_kb of the FUSE mounts (the kernel keeps about this much in flight as 1 MiB READs). */
const readAheadKb = Number(process.argv[5] ?? 1024);
const modes = (process.argv[6] ?? 'disk,mem').split(',') as ('disk' | 'mem')[];
const wanted = new Set((process.argv[7] ?? 'local,fuse,fuse-main,fuse-pt').split(','));

const FRAME = 1 << 20;

/** The blob stored uncompressed: the stored bytes are the local blob file itself. */
class FileFetcher implements BlobFetcher {
  readonly source = 'bench blob file';
  private handle?: Promise<FileHandle>;
  constructor(private readonly path: string) {}
  async fetchRange(_digest: string, range: ByteRange): Promise<Buffer> {
    this.handle ??= open(this.path, 'r');
    const buf = Buffer.allocUnsafe(range.length);
    const { bytesRead } = await (await this.handle).read(buf, 0, range.length, range.offset);
    if (bytesRead !== range.length) throw new Error(`short read of ${this.path}`);
    return buf;
  }
  fetchBlob(): Promise<Buffer> { throw new Error('not used'); }
  async close(): Promise<void> { if (this.handle) await (await this.handle).close(); }
}

/** TOC and descriptor of `path` cut into uncompressed 1 MiB frames. */
function describe(path: string): { toc: BlobToc; descriptor: BlobDescriptor } {
  const size = statSync(path).size;
  const fd = openSync(path, 'r');
  const whole = createHash('sha256');
  const frames: FrameEntry[] = [];
  const buf = Buffer.allocUnsafe(FRAME);
  try {
    for (let off = 0; off < size; off += FRAME) {
      const n = readSync(fd, buf, 0, Math.min(FRAME, size - off), off);
      const bytes = buf.subarray(0, n);
      whole.update(bytes);
      frames.push({ uncompressedOffset: off, uncompressedSize: n, compressedOffset: off, compressedSize: n, digest: createHash('sha256').update(bytes).digest('hex') });
    }
  } finally {
    closeSync(fd);
  }
  const blobId = whole.digest('hex');
  const toc: BlobToc = { blobId, uncompressedSize: size, frameSize: FRAME, compression: 'none', frames };
  const descriptor: BlobDescriptor = {
    digest: `sha256:${blobId}`, size, blobId, uncompressedSize: size, tocOffset: size, tocSize: 0,
    tocDigest: `sha256:${'0'.repeat(64)}`, compression: 'none', frameSize: FRAME,
  };
  return { toc, descriptor };
}

const RAND_SCRIPT = `
const fs = require('node:fs');
const [file, n] = [process.argv[1], Number(process.argv[2])];
const fd = fs.openSync(file, 'r');
const pages = Math.floor(fs.fstatSync(fd).size / 4096);
const buf = Buffer.alloc(4096);
let x = 12345;
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; x >>>= 0; fs.readSync(fd, buf, 0, 4096, (x % pages) * 4096); }
process.stdout.write(String(Number(process.hrtime.bigint() - t0) / 1e6));
`;

function dropCaches(): void {
  execFileSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
}

/** Before each measurement: all page caches dropped; in 'mem' mode the blob's files are then read back in. */
function prepare(mode: 'disk' | 'mem', blobPaths: string[]): void {
  dropCaches();
  if (mode === 'mem') for (const p of blobPaths) execFileSync('sh', ['-c', `cat ${p} > /dev/null`]);
}

async function seqMiBps(file: string, mode: 'disk' | 'mem', blobPaths: string[]): Promise<number> {
  prepare(mode, blobPaths);
  const t0 = process.hrtime.bigint();
  await run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M']);
  return sizeMiB / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function randIops(file: string, mode: 'disk' | 'mem', blobPaths: string[]): Promise<number> {
  prepare(mode, blobPaths);
  const { stdout } = await run(process.execPath, ['-e', RAND_SCRIPT, file, String(randReads)]);
  return randReads / (Number(stdout) / 1000);
}

async function main(): Promise<void> {
  const dir = mkdtempSync('/var/tmp/ondemand-bench-fuse-');
  const mounts: string[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const src = join(dir, 'src');
    mkdirSync(src);
    execFileSync('sh', ['-c', `head -c ${sizeMiB}M /dev/urandom > ${src}/big`]);
    const meta = join(dir, 'meta.img');
    const blobPath = join(dir, 'blob.img');
    execFileSync('mkfs.erofs', ['--chunksize=1048576', `--blobdev=${blobPath}`, meta, src], { stdio: 'ignore' });
    rmSync(src, { recursive: true });

    const local = join(dir, 'local');
    mkdirSync(local);
    const r = await mountAsync(meta, local, 'erofs', MS_RDONLY, `device=${blobPath}`);
    if (r.result !== 0) throw new Error(`local erofs mount failed: errno ${r.errno}`);
    mounts.push(local);
    cleanups.push(async () => { await umount2Async(local, 0); });

    // The real cache, filled from the local blob file before anything is measured.
    const cache = await openCache({ dir: join(dir, 'cache') });
    cleanups.push(() => cache.close());
    const fetcher = new FileFetcher(blobPath);
    cleanups.push(() => fetcher.close());
    const { toc, descriptor } = describe(blobPath);
    const blob: CachedBlob = await cache.openBlob(descriptor, { fetcher, toc });
    cleanups.push(async () => unpin()); // the cache closes unpinned idle blobs (a mount pins its blobs)
    const unpin = blob.pin();
    const t0 = process.hrtime.bigint();
    await blob.prefetch();
    await blob.idle?.();
    if (!blob.isComplete()) throw new Error('prefetch left the blob incomplete');
    process.stderr.write(`cache filled in ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1)} s: ${blob.dataPath}\n`);
    const warmFiles = [blobPath, blob.dataPath];

    const cases: [string, string][] = [['local', join(local, 'big')]];
    // fuse-2t (not run by default): the fast path with one extra thread copying large READs.
    const variants: [string, boolean, boolean, number][] = [
      ['fuse', false, true, 0], ['fuse-2t', false, true, 1], ['fuse-main', false, false, 0], ['fuse-pt', true, true, 0],
    ];
    for (const [name, passthrough, fastReads, readerCopyThreads] of variants.filter(([n]) => wanted.has(n))) {
      const target = join(dir, name);
      const fuseDir = join(dir, `${name}-blobs`);
      mkdirSync(target);
      mkdirSync(fuseDir);
      mounts.push(target, fuseDir);
      const m = await FuseBlobsMount.mount({ target, fuseDir, bootstrapPath: meta, blobs: [blob], passthrough, fuse: { readAheadKb, fastReads, readerCopyThreads } });
      cleanups.push(async () => {
        process.stderr.write(`${name}: ${JSON.stringify(m.stats())}\n`);
        await m.unmount({ lazy: true });
      });
      cases.push([name, join(target, 'big')]);
    }

    for (const mode of modes) {
      const best = new Map<string, { seq: number; rand: number }>();
      for (let round = 0; round < rounds; round++) {
        for (const [name, file] of cases) {
          const seq = await seqMiBps(file, mode, warmFiles);
          const rand = await randIops(file, mode, warmFiles);
          const b = best.get(name) ?? { seq: 0, rand: 0 };
          best.set(name, { seq: Math.max(b.seq, seq), rand: Math.max(b.rand, rand) });
          process.stderr.write(`${mode} round ${round} ${name}: seq ${seq.toFixed(0)} MiB/s, rand4k ${rand.toFixed(0)} IOPS\n`);
        }
      }
      const base = best.get('local')!;
      process.stdout.write(`\nfuse-read warm-${mode}: ${sizeMiB} MiB file, ${randReads} random 4 KiB reads, best of ${rounds}, FUSE read_ahead_kb ${readAheadKb}\n`);
      process.stdout.write(mode === 'disk'
        ? 'page cache dropped before each run: the cache file is read from disk\n'
        : 'page cache dropped, then the blob file and the cache data file read back in: erofs/FUSE page caches cold\n');
      process.stdout.write(`load average: ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
      process.stdout.write('case       seq MiB/s  ratio   rand4k IOPS  ratio\n');
      for (const [name, v] of best) {
        process.stdout.write(`${name.padEnd(10)} ${v.seq.toFixed(0).padStart(9)}  ${(v.seq / base.seq).toFixed(2).padStart(5)}x  ${v.rand.toFixed(0).padStart(11)}  ${(v.rand / base.rand).toFixed(2).padStart(5)}x\n`);
      }
    }
  } finally {
    for (const c of cleanups.reverse()) await c().catch((e: unknown) => process.stderr.write(`cleanup: ${String(e)}\n`));
    for (const m of mounts) umount2(m, MNT_DETACH);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
