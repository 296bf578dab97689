/**
 * Issue #18 must-shows 1 and 3: cold reads through a fresh mount from a local Debian docker-registry,
 * against `curl` of the same blob from the same registry, side by side in one run, runs interleaved.
 * The image (`ondemand build`, frames as given, default none): one file of `seqMiB` and 32 files of
 * `smallMiB`, random bytes, in one blob.
 *   curl        a plain GET of the whole blob to /dev/null (the wire and the registry at full speed)
 *   get+inflate one process (this one) GETs the blob and inflates its frames as they come (gzip frames
 *               are gzip members back to back): issue #18's baseline for compressed frames
 *   seq         `cat` of the big file through a fresh mount, empty cache (1 reader)
 *   8 readers   8 `cat`s of 8 different small files at once, fresh mount, empty cache
 *   32 readers  32 `cat`s of the 32 small files at once, likewise
 * The CPU floor of a verified cold read, measured in each run: the CPU time the registry and `curl`
 * spend on the curl row (`/proc/PID/stat` of the registry, GNU time's user+sys of curl), plus what
 * this host's CPUs spend per GiB on the work a cold read adds to a download and cannot skip: sha256
 * of every byte (node:crypto, as the cache hashes), the copy into the page cache of the cache file
 * (writes of 4 MiB to a new file; the cheaper of two) and the reader's copy out of it (reads of 4
 * MiB). Each part errs low (the registry's cost is that of one whole-blob GET, which costs it less
 * per byte than range requests do; erofs' own copy is left out), so their sum over the host's CPUs
 * bounds from above what any verified, cached read can do here, printed as a ratio to curl.
 * Every ondemand row runs the shipped CLI and daemon (started before the clock, as a host service;
 * mode auto), on its own run and cache dirs; the time is the readers' wall time. The registry's files
 * are evicted from the page cache before every row. Ratios: MiB/s of the row ÷ MiB/s of curl
 * (uncompressed frames) or of get+inflate (compressed frames).
 *   node dist/bench/registry-cold.js [runs=3] [seqMiB=1024] [smallMiB=32] [compression=none]
 */
import { execFile } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import { makeHarness } from '../test/mount/harness.js';
import { evictUnder, median, runRegistryBench, startServiceDaemon } from './service-daemon.js';

const exec = promisify(execFile);
const runs = Number(process.argv[2] ?? 3);
const seqMiB = Number(process.argv[3] ?? 1024);
const smallMiB = Number(process.argv[4] ?? 32);
const compression = process.argv[5] ?? 'none';
const SMALL_FILES = 32;
const MiB = 1024 * 1024;
const ROWS = ['curl', 'get+inflate', 'seq', '8 readers', '32 readers'] as const;
type Row = (typeof ROWS)[number];

function randomFile(path: string, mib: number): void {
  const chunk = Buffer.allocUnsafe(MiB);
  const parts: Buffer[] = [];
  for (let m = 0; m < mib; m++) parts.push(Buffer.from(randomFillSync(chunk)));
  writeFileSync(path, Buffer.concat(parts));
}

runRegistryBench('registry-cold', async ({ tmp, registry, setup }) => {
  const out = (s: string): void => void process.stdout.write(s);
  const tree = join(tmp, 'tree');
  mkdirSync(tree);
  randomFile(join(tree, 'big'), seqMiB);
  for (let i = 0; i < SMALL_FILES; i++) randomFile(join(tree, `f${i}`), smallMiB);
  const layout = join(tmp, 'layout');
  await setup.ok('build', '--compression', compression, tree, `oci:${layout}:od`);
  rmSync(tree, { recursive: true, force: true });
  const ref = `${registry.host}/bench/cold:od`;
  await setup.ok('push', '--insecure', `oci:${layout}:od`, ref);
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(readFileSync(join(layout, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string; size: number; annotations?: Record<string, string> }[] };
  const blob = manifest.layers.reduce((a, b) => (b.size > a.size ? b : a));
  rmSync(layout, { recursive: true, force: true });

  const registryPid = pidWithArgument(registry.dir);
  /** CPU seconds per GiB of the last curl row: the registry's and curl's own. */
  let curlCpu: { registry: number; curl: number } | undefined;
  const curl = async (): Promise<number> => {
    evictUnder(registry.dir);
    const timeFile = join(tmp, 'curl-time');
    const before = registryPid === undefined ? undefined : cpuSecondsOf(registryPid);
    const t0 = performance.now();
    await exec('/usr/bin/time', ['-f', '%U %S', '-o', timeFile, 'curl', '-sf', '-o', '/dev/null', `${registry.url}/v2/bench/cold/blobs/${blob.digest}`]);
    const rate = blob.size / MiB / ((performance.now() - t0) / 1000);
    const [user, sys] = readFileSync(timeFile, 'utf8').trim().split(/\s+/).map(Number);
    const gib = blob.size / (1024 * MiB);
    if (before !== undefined && registryPid !== undefined) curlCpu = { registry: (cpuSecondsOf(registryPid) - before) / gib, curl: ((user ?? 0) + (sys ?? 0)) / gib };
    return rate;
  };
  const getInflate = async (): Promise<number> => {
    evictUnder(registry.dir);
    const t0 = performance.now();
    // The frames only: the blob's table of contents follows them (org.ondemand.toc.offset).
    const framesEnd = Number(blob.annotations?.['org.ondemand.toc.offset'] ?? blob.size);
    const res = await fetch(`${registry.url}/v2/bench/cold/blobs/${blob.digest}`, { headers: { range: `bytes=0-${framesEnd - 1}` } });
    if (!res.ok || res.body === null) throw new Error(`GET of the blob: HTTP ${res.status}`);
    let bytes = 0;
    const count = new Writable({ write(chunk: Buffer, _enc, done) { bytes += chunk.length; done(); } });
    const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
    if (compression === 'gzip') await pipeline(body, createGunzip(), count);
    else await pipeline(body, count);
    return bytes / MiB / ((performance.now() - t0) / 1000);
  };
  const read = async (files: string[]): Promise<number> => {
    const h = makeHarness('bench-cold');
    try {
      const mnt = h.mountpoint();
      await startServiceDaemon(h);
      await h.ok('mount', '--insecure', '--image', ref, mnt);
      evictUnder(registry.dir);
      const t0 = performance.now();
      await Promise.all(files.map((f) => exec('sh', ['-c', 'cat "$1" > /dev/null', 'sh', join(mnt, f)])));
      const mib = files.reduce((n, f) => n + (f === 'big' ? seqMiB : smallMiB), 0);
      const rate = mib / ((performance.now() - t0) / 1000);
      await h.ok('umount', mnt);
      return rate;
    } finally {
      await h.cleanup();
    }
  };
  const small = (n: number): string[] => Array.from({ length: n }, (_, i) => `f${i}`);
  const measure: Record<Row, () => Promise<number>> = {
    curl,
    'get+inflate': getInflate,
    seq: () => read(['big']),
    '8 readers': () => read(small(8)),
    '32 readers': () => read(small(SMALL_FILES)),
  };
  const results = new Map<Row, number[]>(ROWS.map((r) => [r, []]));
  const floors: CpuFloor[] = [];
  for (let run = 0; run < runs; run++) {
    const order = [...ROWS.slice(run % ROWS.length), ...ROWS.slice(0, run % ROWS.length)];
    for (const row of order) {
      const rate = await measure[row]();
      results.get(row)!.push(rate);
      process.stderr.write(`run ${run + 1}/${runs} ${row}: ${rate.toFixed(0)} MiB/s\n`);
    }
    if (curlCpu !== undefined) floors.push({ ...curlCpu, ...addedWorkCpu(tmp), curlRate: results.get('curl')!.at(-1)! });
  }
  out(`\nregistry-cold: ${runs} runs; blob ${(blob.size / MiB).toFixed(0)} MiB, frames ${compression}; seq file ${seqMiB} MiB, ${SMALL_FILES} files of ${smallMiB} MiB; registry ${registry.host}\n`);
  const base: Row = compression === 'none' ? 'curl' : 'get+inflate';
  out(`row          MiB/s (median)   ratio to ${base} (median of per-run ratios; per run)\n`);
  for (const row of ROWS) {
    const rates = results.get(row)!;
    const ratios = rates.map((r, i) => r / results.get(base)![i]!);
    out(`${row.padEnd(12)} ${median(rates).toFixed(0).padStart(14)}   ${median(ratios).toFixed(2)}x (${ratios.map((r) => r.toFixed(2)).join(' ')})\n`);
  }
  out('targets (issue #18): seq >= 0.7x curl (uncompressed frames) or get+inflate (compressed); 8 and 32 readers >= 1.0x curl\n');
  if (floors.length > 0) printFloor(out, floors);
});

interface CpuFloor { registry: number; curl: number; sha256: number; write: number; read: number; curlRate: number }

/** The process whose command line has `arg` (the registry is started with its config file in its dir). */
function pidWithArgument(arg: string): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').some((a) => a.startsWith(arg))) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** utime + stime of a process, in seconds. */
function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ
}

/** CPU seconds per GiB of this process for sha256, a page-cache write and a read of the written file. */
function addedWorkCpu(tmp: string): { sha256: number; write: number; read: number } {
  const chunk = randomFillSync(Buffer.allocUnsafe(4 * MiB));
  const chunks = 256;
  const cpu = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  let t = cpu();
  for (let i = 0; i < chunks; i++) createHash('sha256').update(chunk).digest();
  const sha256 = cpu() - t;
  // Written twice, the cheaper one kept: the second reuses the pages the first freed (a floor errs low).
  let write = Infinity;
  let read = Infinity;
  for (let round = 0; round < 2; round++) {
    const file = join(tmp, `floor-data-${round}`);
    const fd = openSync(file, 'w+');
    try {
      t = cpu();
      for (let i = 0; i < chunks; i++) writeSync(fd, chunk, 0, chunk.length, i * chunk.length);
      write = Math.min(write, cpu() - t);
      t = cpu();
      for (let i = 0; i < chunks; i++) readSync(fd, chunk, 0, chunk.length, i * chunk.length);
      read = Math.min(read, cpu() - t);
    } finally {
      closeSync(fd);
      rmSync(file, { force: true });
    }
  }
  return { sha256, write, read };
}

function printFloor(out: (s: string) => void, floors: CpuFloor[]): void {
  const cpus = availableParallelism();
  const f = (k: keyof CpuFloor): number => median(floors.map((x) => x[k]));
  const total = (x: CpuFloor): number => x.registry + x.curl + x.sha256 + x.write + x.read;
  const ceilings = floors.map((x) => (cpus * 1024) / total(x) / x.curlRate);
  out(`\nCPU floor of a verified cold read, CPU seconds per GiB (medians of ${floors.length} runs): registry ${f('registry').toFixed(2)} + receive ${f('curl').toFixed(2)} (curl's own)`
    + ` + sha256 ${f('sha256').toFixed(2)} + page-cache write ${f('write').toFixed(2)} + reader's copy ${f('read').toFixed(2)} = ${median(floors.map(total)).toFixed(2)}\n`);
  out(`on ${cpus} CPUs at most ${median(floors.map((x) => (cpus * 1024) / total(x))).toFixed(0)} MiB/s with nothing else done: ${median(ceilings).toFixed(2)}x curl (per run ${ceilings.map((r) => r.toFixed(2)).join(' ')})\n`);
}
