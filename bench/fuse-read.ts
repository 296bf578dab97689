/**
 * Read throughput of a 1 GiB file through erofs over fuse-blobs, without and with FUSE passthrough,
 * against the same image mounted from local files (file-backed erofs), side by side in one run. Every
 * case is mounted by the product's code: fuse-blobs by fuseBlobsTransport (kernel objects made in this
 * process by the functions the daemon's supervisor uses; `fuse` with features as on a kernel without
 * passthrough), `local` by the same kernel broker's mount.
 *
 * "warm": the ondemand cache (src/cache, the real one) holds the whole blob (uncompressed 1 MiB frames,
 * fetched from the local blob file by prefetch before measuring); erofs's page cache is cold.
 *   warm-disk: before every measurement the file read (the erofs file), the files under it (the local
 *              blob file; the FUSE blob file where it keeps a page cache, and the cache data file) are
 *              evicted (posix_fadvise DONTNEED): everything comes from disk.
 *   warm-mem:  the file read is evicted, the files under it are in the page cache: the second read of
 *              a file whose own pages were reclaimed. No case waits for the disk. Without passthrough
 *              the complete blob keeps a FUSE page cache (as the local blob file keeps its own).
 *   Not drop_caches: on this VM, memory freed in bulk is handed back to the host (virtio-balloon free
 *   page reporting) and refilling it faults every page in again, which made single runs 5-20x slower
 *   at random; pages evicted right before a run are reused at once.
 *   seq:  dd bs=1M of the whole file in a child process.
 *   rand: a child node process doing 4 KiB preads at random 4 KiB-aligned offsets (fixed seed,
 *         xorshift32: nearly all distinct pages).
 * One unmeasured sequential read of every case first; then each case runs ROUNDS times interleaved,
 * the best run counts.
 * Cases: local (file-backed erofs on the local files); fuse (the product's arrangement without
 * passthrough: the complete blob opened cached, erofs read_ahead_kb left at 128, READs answered on the
 * FUSE reader thread, large ones spliced); fuse-pt (FUSE passthrough). `fuseReadAheadKb` stays an
 * argument for the command lines in bench/RESULTS.md, but only the product's value is accepted.
 * Also printed: the round trip of a byte between two processes over pipes (bench/wakeup-floor.c, when
 * cc is there): the least any userspace server adds to a read on this host.
 *   make build && node dist/bench/fuse-read.js [sizeMiB=1024] [randReads=20000] [rounds=3] [fuseReadAheadKb=1024] [modes=mem,disk] [cases=local,fuse,fuse-pt]
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { MNT_DETACH, MS_RDONLY, umount2 } from '../src/native/libc.js';
import { FUSE_READ_AHEAD_KB, fuseBlobsTransport } from '../src/transport/fuse-blobs/transport.js';
import { InProcessKernel } from '../src/transport/in-process-kernel.js';
import type { Features } from '../src/transport/kernel-features.js';
import { UndoStack } from '../src/util/undo-stack.js';
import { WITHOUT_PASSTHROUGH, mountTransport } from '../test/helpers/transport-mount.js';
import { openCache } from '../src/cache/index.js';
import type { CachedBlob } from '../src/cache/types.js';
import type { BlobDescriptor, BlobToc, FrameEntry } from '../src/format/image/types.js';
import type { BlobFetcher, ByteRange } from '../src/fetch/types.js';
import { deferFreePageReporting } from './free-page-reporting.js';

const run = promisify(execFile);
const sizeMiB = Number(process.argv[2] ?? 1024);
const randReads = Number(process.argv[3] ?? 20000);
const rounds = Number(process.argv[4] ?? 3);
/** read_ahead_kb of the FUSE mounts: the product's (checked in main). */
const readAheadKb = Number(process.argv[5] ?? FUSE_READ_AHEAD_KB);
const modes = (process.argv[6] ?? 'mem,disk').split(',') as ('disk' | 'mem')[];
const wanted = new Set((process.argv[7] ?? 'local,fuse,fuse-pt').split(','));

const FRAME = 1 << 20;

/** The product's two arrangements on this kernel: features as the daemon would probe them. */
const VARIANTS: [string, { passthrough: boolean; features: Partial<Features> }][] = [
  ['fuse', { passthrough: false, features: WITHOUT_PASSTHROUGH }],
  ['fuse-pt', { passthrough: true, features: {} }],
];

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

/** The pipe round trip of bench/wakeup-floor.c (compiled into the bench's temp dir), or why not. */
function wakeupFloor(): string {
  const source = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'wakeup-floor.c');
  const binary = join(tmpdir(), `ondemand-wakeup-floor-${process.pid}`);
  try {
    execFileSync('cc', ['-O2', '-o', binary, source], { stdio: 'ignore' });
    return execFileSync(binary, { encoding: 'utf8' }).trim();
  } catch (err) {
    return `wakeup floor not measured: ${String(err).split('\n')[0]}`;
  } finally {
    rmSync(binary, { force: true });
  }
}


/**
 * Evicts a file's pages from the page cache (posix_fadvise DONTNEED through dd). Asynchronously: the
 * open of a FUSE file waits for this process's main thread to answer OPEN.
 */
async function evict(file: string): Promise<void> {
  await run('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/**
 * Before each measurement: the file about to be read evicted; disk: the files under it evicted too;
 * mem: those read in (a no-op after the first time).
 */
async function prepare(mode: 'disk' | 'mem', file: Target, warmFiles: string[]): Promise<void> {
  await evict(file.path);
  for (const p of [...warmFiles, ...file.cachedUnder]) {
    if (mode === 'disk') await evict(p);
    else await run('sh', ['-c', `cat ${p} > /dev/null`]);
  }
}

interface Target {
  /** The 1 GiB file in the erofs mount. */
  path: string;
  /** FUSE files under it that keep a page cache. */
  cachedUnder: string[];
}

async function seqMiBps(file: Target, mode: 'disk' | 'mem', warmFiles: string[]): Promise<number> {
  await prepare(mode, file, warmFiles);
  const t0 = process.hrtime.bigint();
  await run('dd', [`if=${file.path}`, 'of=/dev/null', 'bs=1M']);
  return sizeMiB / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function randIops(file: Target, mode: 'disk' | 'mem', warmFiles: string[]): Promise<number> {
  await prepare(mode, file, warmFiles);
  const { stdout } = await run(process.execPath, ['-e', RAND_SCRIPT, file.path, String(randReads)]);
  return randReads / (Number(stdout) / 1000);
}

async function main(): Promise<void> {
  if (readAheadKb !== FUSE_READ_AHEAD_KB) throw new Error(`fuseReadAheadKb: the product sets ${FUSE_READ_AHEAD_KB}; other values are not measured any more`);
  const unknown = [...wanted].filter((c) => c !== 'local' && !VARIANTS.some(([n]) => n === c));
  if (unknown.length > 0) throw new Error(`unknown cases ${unknown.join(',')}: local, ${VARIANTS.map(([n]) => n).join(', ')}`);
  const restoreReporting = deferFreePageReporting();
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
    const localUndo = new UndoStack();
    await new InProcessKernel().broker(localUndo).mount(meta, local, 'erofs', MS_RDONLY, `device=${blobPath}`);
    mounts.push(local);
    cleanups.push(async () => { await localUndo.unwind(); });

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

    const cases: [string, Target][] = [['local', { path: join(local, 'big'), cachedUnder: [] }]];
    const statsOf = new Map<string, () => number[]>();
    for (const [name, v] of VARIANTS.filter(([n]) => wanted.has(n))) {
      const target = join(dir, name);
      const privateDir = join(dir, `${name}-blobs`);
      mkdirSync(target);
      mounts.push(target, privateDir);
      const m = await mountTransport(fuseBlobsTransport, { mountpoint: target, privateDir, bootstrapPath: meta, blobs: [blob], features: v.features, image: 'bench' });
      statsOf.set(name, () => { const s = m.active.stats().session; return [s.reads, s.bytesRead]; });
      cleanups.push(async () => {
        process.stderr.write(`${name}: ${JSON.stringify(m.active.stats())}\n`);
        await m.unmount();
      });
      const connection = m.active.stats().connection;
      if (connection?.passthrough !== v.passthrough) throw new Error(`${name}: FUSE passthrough ${String(connection?.passthrough)}, expected ${String(v.passthrough)}`);
      // Without passthrough the complete blob is opened cached: its FUSE file keeps a page cache.
      cases.push([name, { path: join(target, 'big'), cachedUnder: v.passthrough ? [] : [join(privateDir, blob.blobId)] }]);
      process.stderr.write(`${name}: FUSE max_pages ${connection.maxPages}\n`);
    }

    process.stdout.write(`${wakeupFloor()}\n`);
    for (const [, file] of cases) await prepare(modes.includes('mem') ? 'mem' : 'disk', file, warmFiles);
    for (const [, file] of cases) await run('dd', [`if=${file.path}`, 'of=/dev/null', 'bs=1M']); // unmeasured first read

    for (const mode of modes) {
      const best = new Map<string, { seq: number; rand: number }>();
      for (let round = 0; round < rounds; round++) {
        for (const [name, file] of cases) {
          const before = statsOf.get(name)?.() ?? [0, 0];
          const seq = await seqMiBps(file, mode, warmFiles);
          const mid = statsOf.get(name)?.() ?? [0, 0];
          const rand = await randIops(file, mode, warmFiles);
          const after = statsOf.get(name)?.() ?? [0, 0];
          if (statsOf.has(name)) {
            const kib = (a: number[], b: number[]): string => (a[0] === b[0] ? '-' : ((b[1]! - a[1]!) / (b[0]! - a[0]!) / 1024).toFixed(0));
            process.stderr.write(`  ${name} READs: seq ${mid[0]! - before[0]!} (avg ${kib(before, mid)} KiB), rand ${after[0]! - mid[0]!} (avg ${kib(mid, after)} KiB)\n`);
          }
          const b = best.get(name) ?? { seq: 0, rand: 0 };
          best.set(name, { seq: Math.max(b.seq, seq), rand: Math.max(b.rand, rand) });
          process.stderr.write(`${mode} round ${round} ${name}: seq ${seq.toFixed(0)} MiB/s, rand4k ${rand.toFixed(0)} IOPS\n`);
        }
      }
      const base = best.get('local')!;
      process.stdout.write(`\nfuse-read warm-${mode}: ${sizeMiB} MiB file, ${randReads} random 4 KiB reads, best of ${rounds}, FUSE read_ahead_kb ${readAheadKb}\n`);
      process.stdout.write(mode === 'disk'
        ? 'the file read and the files under it (blob files, cache data file) evicted before each run: read from disk\n'
        : 'the file read evicted before each run, the files under it (blob files, cache data file) in the page cache\n');
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
    restoreReporting();
  }
}

await main();
