/**
 * Read throughput of a 1 GiB file through erofs over fuse-blobs, without and with FUSE passthrough,
 * against the same image mounted from local files (file-backed erofs), side by side in one run.
 *
 * "warm": the ondemand cache is full (the blob's data file is complete on local disk; a CachedBlob
 * that preads it — the real cache adds only a presence check per read) but the page cache is cold.
 *   warm-disk: drop_caches=3 before every measurement (the data file too: disk-bound, noisy on a
 *              shared disk).
 *   warm-mem:  drop_caches=3, then the blob data file is read back into the page cache, so erofs and
 *              FUSE page caches are cold but no case waits for the disk (measures our overhead).
 *   seq:  dd bs=1M of the whole file in a child process.
 *   rand: a child node process doing 4 KiB preads at random 4 KiB-aligned offsets (fixed seed).
 * Each case runs ROUNDS times interleaved; the best run counts.
 *   make build && node dist/bench/fuse-read.js [sizeMiB=1024] [randReads=20000] [rounds=2] [fuseReadAheadKb=1024] [modes=disk,mem]
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FuseBlobsMount } from '../src/transport/fuse-blobs/mount.js';
import { mountAsync, umount2Async } from '../src/native/fuse.js';
import { MNT_DETACH, MS_RDONLY, umount2 } from '../src/native/libc.js';
import type { BlobStats, CachedBlob } from '../src/cache/types.js';
import type { BlobToc } from '../src/format/image/types.js';

const run = promisify(execFile);
const sizeMiB = Number(process.argv[2] ?? 1024);
const randReads = Number(process.argv[3] ?? 20000);
const rounds = Number(process.argv[4] ?? 2);
/** read_ahead_kb of the FUSE mounts (the kernel keeps about this much in flight as 1 MiB READs). */
const readAheadKb = Number(process.argv[5] ?? 1024);
const modes = (process.argv[6] ?? 'disk,mem').split(',') as ('disk' | 'mem')[];

/** A complete blob in the cache: reads are preads of the local data file. */
class CompleteFileBlob implements CachedBlob {
  readonly size: number;
  readonly toc: BlobToc;
  private handle?: Promise<FileHandle>;
  constructor(readonly blobId: string, readonly dataPath: string) {
    this.size = statSync(dataPath).size;
    this.toc = { blobId, uncompressedSize: this.size, frameSize: 1 << 20, compression: 'none', frames: [] };
  }
  async read(offset: number, length: number): Promise<Buffer> {
    this.handle ??= open(this.dataPath, 'r');
    const h = await this.handle;
    const buf = Buffer.allocUnsafe(Math.min(length, this.size - offset));
    const { bytesRead } = await h.read(buf, 0, buf.length, offset);
    return buf.subarray(0, bytesRead);
  }
  async ensure(): Promise<void> {}
  isComplete(): boolean { return true; }
  async prefetch(): Promise<void> {}
  stats(): BlobStats { return { hits: 0, misses: 0, bytesFetched: 0, requestsFetched: 0, mergedRequests: 0, framesPresent: 1, framesTotal: 1 }; }
  pin(): () => void { return () => undefined; }
  async close(): Promise<void> { if (this.handle) await (await this.handle).close(); }
}

const RAND_SCRIPT = `
const fs = require('node:fs');
const [file, n] = [process.argv[1], Number(process.argv[2])];
const fd = fs.openSync(file, 'r');
const pages = Math.floor(fs.fstatSync(fd).size / 4096);
const buf = Buffer.alloc(4096);
let x = 12345;
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) % 2147483648; fs.readSync(fd, buf, 0, 4096, (x % pages) * 4096); }
process.stdout.write(String(Number(process.hrtime.bigint() - t0) / 1e6));
`;

function dropCaches(): void {
  execFileSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
}

/** Before each measurement: all page caches dropped; in 'mem' mode the blob data file is then read back in. */
function prepare(mode: 'disk' | 'mem', blobPath: string): void {
  dropCaches();
  if (mode === 'mem') execFileSync('sh', ['-c', `cat ${blobPath} > /dev/null`]);
}

async function seqMiBps(file: string, mode: 'disk' | 'mem', blobPath: string): Promise<number> {
  prepare(mode, blobPath);
  const t0 = process.hrtime.bigint();
  await run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M']);
  return sizeMiB / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function randIops(file: string, mode: 'disk' | 'mem', blobPath: string): Promise<number> {
  prepare(mode, blobPath);
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

    const cases: [string, string][] = [['local', join(local, 'big')]];
    for (const passthrough of [false, true]) {
      const name = passthrough ? 'fuse-pt' : 'fuse';
      const target = join(dir, name);
      const fuseDir = join(dir, `${name}-blobs`);
      mkdirSync(target);
      mkdirSync(fuseDir);
      const blob = new CompleteFileBlob('b'.repeat(64), blobPath);
      mounts.push(target, fuseDir);
      const m = await FuseBlobsMount.mount({ target, fuseDir, bootstrapPath: meta, blobs: [blob], passthrough, fuse: { readAheadKb } });
      cleanups.push(async () => {
        process.stderr.write(`${name}: ${JSON.stringify(m.stats())}\n`);
        await m.unmount({ lazy: true });
        await blob.close();
      });
      cases.push([name, join(target, 'big')]);
    }

    for (const mode of modes) {
      const best = new Map<string, { seq: number; rand: number }>();
      for (let round = 0; round < rounds; round++) {
        for (const [name, file] of cases) {
          const seq = await seqMiBps(file, mode, blobPath);
          const rand = await randIops(file, mode, blobPath);
          const b = best.get(name) ?? { seq: 0, rand: 0 };
          best.set(name, { seq: Math.max(b.seq, seq), rand: Math.max(b.rand, rand) });
          process.stderr.write(`${mode} round ${round} ${name}: seq ${seq.toFixed(0)} MiB/s, rand4k ${rand.toFixed(0)} IOPS\n`);
        }
      }
      const base = best.get('local')!;
      process.stdout.write(`\nfuse-read warm-${mode}: ${sizeMiB} MiB file, ${randReads} random 4 KiB reads, best of ${rounds}, FUSE read_ahead_kb ${readAheadKb}\n`);
      process.stdout.write(mode === 'disk'
        ? 'page cache dropped before each run: the cache file is read from disk\n'
        : 'page cache dropped, then the cache data file read back in: erofs/FUSE page caches cold, cache file in memory\n');
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
