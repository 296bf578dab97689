/**
 * fuse-tree against the other ways to read one image on this host (issue #15, must-show 5), every row
 * measured for every mode in turn within a run, the first mode rotating from run to run (A B C D,
 * B C D A, ...):
 *   fuse-tree   fuseTreeTransport: the whole tree over FUSE from our erofs reader, data through the cache
 *   fuse-blobs  fuseBlobsTransport: kernel erofs over FUSE blob files (this kernel's features: passthrough)
 *   local       the kernel's erofs, file-backed, on complete local files: the bootstrap and the blob
 *               copied from a complete cache, `device=` for the blob
 *   erofsfuse   erofs-utils' user-space erofs over FUSE (libfuse3, its defaults: multi-threaded) on the
 *               same two files as local (--device=BLOB), built by scripts/build-erofsfuse.sh from
 *               Debian 13's source package; its rows are skipped, with the reason, when it cannot be built
 * The image: the Debian minbase tree the tests use (test/helpers/trees.ts) plus one file of random
 * bytes (`big`), built by the shipped CLI (`bin/ondemand build --compression C`). fuse-tree and
 * fuse-blobs are mounted by the product's transports (test/helpers/transport-mount.ts: the context
 * the daemon's MountManager builds, kernel objects made in this process) over caches of their own,
 * each filled by prefetch from the OCI layout before the mounts are made, as a daemon does for an
 * image whose cache is complete. The mounts stay for the whole run.
 * Rows (all warm: every blob in the cache; nothing fetched):
 *   warm seq       read(2) of `big`, 1 MiB at a time (bench/fsops.c)
 *   rand4k 1/4 job fio --rw=randread --bs=4k --direct=0 --ioengine=psync, 1 and 4 jobs on `big`, each
 *                  job in its own part of it, no page read twice (every read misses the page cache),
 *                  randSeconds at most
 *   stat           lstat of every path of the tree (bench/fsops.c, from a list)
 *   readdir        every entry of every directory (bench/fsops.c)
 * Before a data row, the page cache of every mode's files is evicted (posix_fadvise DONTNEED): `big` on
 * each mount (for the FUSE modes that is the FUSE mount's own page cache) and the files under it
 * (bootstrap and blob copies, cache data files); every mode's, so no mode pays for reclaiming another's
 * pages. Before stat and readdir: `echo 2 > /proc/sys/vm/drop_caches` (dentries and inodes; FUSE
 * mounts get FORGETs and LOOKUP again) and the bootstraps evicted. Per-file eviction rather than
 * `echo 1 > drop_caches`: it drops the same pages of ours without emptying the page cache of the
 * other work on this machine, and on this VM memory freed in bulk faults in again at random
 * (bench/fuse-read.ts); free page reporting is deferred for the run.
 * Every read of a mount happens in a child process (fsops, fio, sha256sum, find): this process serves
 * the two in-process FUSE mounts on its main thread.
 * Before the runs (unmeasured): the sha256 of `big` and a listing of the tree (type, mode, owner,
 * size) through every mode, against the source.
 * Also printed, for fuse-tree's rows: where its time went (FUSE requests, and the CPU and runqueue time
 * of the main thread and of the mount's reader thread, from /proc/self/task/TID/schedstat).
 * FTB_HOLD=FILE: after the setup, the mounts' paths are written to FILE and the bench waits for
 * SIGUSR2 before the runs (to profile or try things by hand against the same mounts).
 *   make build && node dist/bench/fuse-tree.js [runs=5] [bigMiB=512] [randSeconds=5] [compression=none]
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { openCache, type Cache } from '../src/cache/backend.js';
import type { CachedBlob } from '../src/cache/types.js';
import { cacheOptions } from '../src/daemon/worker.js';
import { mountDevice } from '../src/fuse/connection.js';
import { openPinnedImage } from '../src/mount/pinned-image.js';
import { erofsBdis, newErofsBdi } from '../src/native/bdi.js';
import { MNT_DETACH, umount2 } from '../src/native/libc.js';
import { resolveImage } from '../src/resolve/index.js';
import { fuseBlobsTransport, type FuseBlobsTransportStats } from '../src/transport/fuse-blobs/transport.js';
import { fuseTreeTransport, type FuseTreeTransportStats } from '../src/transport/fuse-tree/transport.js';
import { InProcessKernel } from '../src/transport/in-process-kernel.js';
import { erofsMountFlags } from '../src/transport/kernel-objects.js';
import type { ActiveTransport } from '../src/transport/types.js';
import { UndoStack } from '../src/util/undo-stack.js';
import { mountTransport, mountpoints as mounted, type TransportMount } from '../test/helpers/transport-mount.js';
import { makeDebianTree } from '../test/helpers/trees.js';
import { deferFreePageReporting } from './free-page-reporting.js';
import { cleanUpOnSignal } from './service-daemon.js';

const exec = promisify(execFile);
const runs = Number(process.argv[2] ?? 5);
const bigMiB = Number(process.argv[3] ?? 512);
const randSeconds = Number(process.argv[4] ?? 5);
const compression = process.argv[5] ?? 'none';

const MODES = ['fuse-tree', 'fuse-blobs', 'local', 'erofsfuse'] as const;
type Mode = (typeof MODES)[number];
const ROWS = ['warm seq', 'rand4k 1 job', 'rand4k 4 jobs', 'stat', 'readdir'] as const;
type Row = (typeof ROWS)[number];
const UNIT: Record<Row, string> = { 'warm seq': 'MiB/s', 'rand4k 1 job': 'IOPS', 'rand4k 4 jobs': 'IOPS', stat: 'files/s', readdir: 'entries/s' };
const TAG = 'bench';
/** Target of issue #15: warm sequential fuse-tree >= this times local. */
const WARM_SEQ_TARGET = 0.8;

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const fmt = (v: number): string => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');

/** fsops' "MS OPS BYTES" as a rate: MiB/s for reads of bytes, else operations per second. */
async function fsops(binary: string, row: Row, args: string[]): Promise<number> {
  const { stdout } = await exec(binary, args, { maxBuffer: 1 << 20 });
  const [ms, ops, bytes] = stdout.trim().split(' ').map(Number);
  return UNIT[row] === 'MiB/s' ? bytes! / 1048576 / (ms! / 1000) : ops! / (ms! / 1000);
}

/**
 * fio's IOPS of JOBS psync readers doing 4 KiB buffered reads at random pages of `file` (of bigMiB):
 * each job in a region of its own (the file cut in JOBS), fio's random map (no page twice), up to half
 * its region, for randSeconds at most. So every read misses the page cache: jobs sharing pages made the
 * 4-job row bimodal (a mode that missed faster got more hits from the other jobs' pages: 9k or 130k IOPS).
 */
async function fio(file: string, jobs: number): Promise<number> {
  const region = Math.floor(bigMiB / jobs);
  const { stdout } = await exec('fio', [
    '--name=rand4k', `--filename=${file}`, '--readonly', '--rw=randread', '--bs=4k', '--direct=0', '--ioengine=psync',
    `--numjobs=${jobs}`, `--size=${region}m`, `--offset_increment=${region}m`, `--io_size=${Math.floor(region / 2)}m`,
    '--group_reporting', `--runtime=${randSeconds}`, '--output-format=json',
  ], { maxBuffer: 1 << 24 });
  const json = JSON.parse(stdout.slice(stdout.indexOf('{'))) as { jobs: { read: { iops: number } }[] };
  return json.jobs[0]!.read.iops;
}

/** One image opened in one cache as MountManager.prepare does: bootstrap in the cache, blobs pinned. */
async function prepareImage(ref: string, cache: Cache, undo: UndoStack): Promise<{ bootstrapPath: string; blobs: CachedBlob[] }> {
  return openPinnedImage(await resolveImage(ref), cache, undo);
}

/** `big` of random bytes, written in 1 MiB pieces; its sha256. */
function writeBig(path: string, mib: number): string {
  const h = createHash('sha256');
  const chunk = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(path, 'w');
  try {
    for (let i = 0; i < mib; i++) {
      randomFillSync(chunk);
      h.update(chunk);
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** The tree as `find` lists it (type, mode, owner, size but a directory's), sorted: equal trees list equal. */
async function listing(root: string): Promise<string> {
  const { stdout } = await exec('find', [root, '-printf', '%y %m %U %G %s %P\\n'], { maxBuffer: 1 << 26 });
  return stdout.split('\n').filter((l) => l !== '').map((l) => (l.startsWith('d ') ? l.replace(/^(d \S+ \S+ \S+) \S+/, '$1 -') : l)).sort().join('\n');
}

/** erofsfuse's binary (built and cached by scripts/build-erofsfuse.sh), or why there is none. */
async function erofsfuseBinary(): Promise<{ path?: string; reason?: string }> {
  try {
    const { stdout } = await exec('bash', [join(repo, 'scripts', 'build-erofsfuse.sh')], { maxBuffer: 1 << 22 });
    const path = stdout.trim().split('\n').pop() ?? '';
    return existsSync(path) ? { path } : { reason: `scripts/build-erofsfuse.sh printed no binary (${stdout.trim().slice(-200)})` };
  } catch (err) {
    const e = err as { stderr?: string };
    return { reason: `scripts/build-erofsfuse.sh failed: ${(e.stderr ?? String(err)).trim().split('\n').slice(-3).join(' / ')}` };
  }
}

/** Waits until `path` is a mount point (erofsfuse mounts in its own time), or the process ended. */
async function untilMounted(path: string, child: ChildProcess, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!mounted().includes(path)) {
    if (child.exitCode !== null) throw new Error(`erofsfuse exited ${child.exitCode} before mounting ${path}`);
    if (Date.now() > end) throw new Error(`erofsfuse did not mount ${path} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The erofs bdi made by `mount` and its read_ahead_kb, for the record. */
async function erofsReadAhead(mount: () => Promise<void>): Promise<string> {
  const before = erofsBdis();
  await mount();
  const bdi = newErofsBdi(before, erofsBdis());
  return bdi === undefined ? '?' : readFileSync(`/sys/class/bdi/${bdi}/read_ahead_kb`, 'utf8').trim();
}

function fuseReadAhead(mountpoint: string): string {
  try {
    return readFileSync(`/sys/class/bdi/${mountDevice(mountpoint)}/read_ahead_kb`, 'utf8').trim();
  } catch {
    return '?';
  }
}

/** This process's threads (task ids). */
function threads(): Set<string> {
  return new Set(readdirSync('/proc/self/task'));
}

/** A thread's time on a CPU and waiting for one (runqueue), in ms (/proc/PID/task/TID/schedstat, ns). */
function schedMs(tid: string): [number, number] {
  try {
    const [run, wait] = readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').trim().split(' ').map(Number);
    return [run! / 1e6, wait! / 1e6];
  } catch {
    return [0, 0];
  }
}

/** A mode's mount: where its tree is and which files lie under it. */
interface Mounted {
  mountpoint: string;
  /** Bootstrap first, then the blob files it reads (copies or cache data files). */
  under: string[];
  readAheadKb: string;
  /** FUSE requests of our own transports, sampled around each measurement. */
  counters: () => Record<string, number>;
}

async function main(): Promise<void> {
  const restoreReporting = deferFreePageReporting(false);
  const dir = mkdtempSync('/var/tmp/ondemand-bench-ftree-');
  const ours: string[] = [];
  const undo = new UndoStack();
  let erofsfuseProcess: ChildProcess | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanUp = (): Promise<void> => (cleaning ??= (async () => {
    if (erofsfuseProcess && erofsfuseProcess.exitCode === null) {
      const mnt = join(dir, 'mnt-erofsfuse');
      if (mounted().includes(mnt)) umount2(mnt, MNT_DETACH);
      const ended = new Promise((r) => erofsfuseProcess!.once('exit', r));
      const timer = setTimeout(() => erofsfuseProcess?.kill('SIGKILL'), 5_000);
      await ended;
      clearTimeout(timer);
    }
    const failures = await undo.unwind();
    if (failures.length > 0) process.stderr.write(`cleanup: ${failures.join('; ')}\n`);
    for (const m of ours) if (mounted().includes(m)) umount2(m, MNT_DETACH);
    rmSync(dir, { recursive: true, force: true });
    restoreReporting();
  })());
  const stopWatching = cleanUpOnSignal(cleanUp);
  try {
    const binary = join(dir, 'fsops');
    await exec('cc', ['-O2', '-Wall', '-o', binary, join(repo, 'bench', 'fsops.c')]);
    await exec('fio', ['--version']).catch(() => { throw new Error('fio is not installed (Debian package fio; scripts/install-deps.sh installs it)'); });

    // The image: Debian minbase plus `big`, built by the shipped CLI.
    const t0 = Date.now();
    const src = join(dir, 'src');
    const noDebian = makeDebianTree(src);
    if (noDebian !== undefined) {
      process.stdout.write(`fuse-tree bench: skipped, no Debian tree: ${noDebian}\n`);
      return;
    }
    const bigSha = writeBig(join(src, 'big'), bigMiB);
    const statList = join(dir, 'stat.list');
    const dirList = join(dir, 'dirs.list');
    const { stdout: paths } = await exec('find', [src, '-mindepth', '1', '-printf', '%P\\n'], { maxBuffer: 1 << 26 });
    const { stdout: dirs } = await exec('find', [src, '-mindepth', '1', '-type', 'd', '-printf', '%P\\n'], { maxBuffer: 1 << 26 });
    writeFileSync(statList, paths);
    writeFileSync(dirList, `.\n${dirs}`);
    const counts = { paths: paths.trim().split('\n').length, dirs: dirs.trim().split('\n').length + 1 };
    const layout = join(dir, 'layout');
    const { stdout: builtJson } = await exec(process.execPath, [join(repo, 'bin', 'ondemand'), 'build', src, `oci:${layout}:${TAG}`, '--compression', compression, '--json'], { maxBuffer: 1 << 22 });
    const built = JSON.parse(builtJson) as { blobs: { uncompressedSize: number; frames: number }[]; bootstrap: { uncompressedSize: number }; stats: { files: number; dirs: number } };
    const ref = `oci:${layout}:${TAG}`;
    const srcListing = await listing(src);
    process.stderr.write(`image built in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${built.blobs.length} blob(s) (${built.blobs.map((b) => `${(b.uncompressedSize / 1048576).toFixed(0)} MiB, ${b.frames} frames`).join('; ')}), bootstrap ${built.bootstrap.uncompressedSize} B, ${compression}\n`);

    // Two caches, each complete before its mount is made.
    const lazy: { mode: 'fuse-tree' | 'fuse-blobs'; bootstrapPath: string; blobs: CachedBlob[]; m?: TransportMount<ActiveTransport> }[] = [];
    for (const mode of ['fuse-tree', 'fuse-blobs'] as const) {
      const cacheDir = join(dir, `cache-${mode}`);
      const cache = await openCache(cacheOptions(cacheDir));
      undo.push(`cache of ${mode}`, () => cache.close());
      const p = await prepareImage(ref, cache, undo);
      const t1 = Date.now();
      await Promise.all(p.blobs.map((b) => b.prefetch()));
      if (!p.blobs.every((b) => b.isComplete())) throw new Error(`${mode}: prefetch left a blob incomplete`);
      process.stderr.write(`${mode}: cache filled in ${((Date.now() - t1) / 1000).toFixed(1)} s\n`);
      lazy.push({ mode, ...p });
    }

    // local and erofsfuse: complete copies of the bootstrap and the blob (the cache data file is the blob's uncompressed bytes).
    const files = join(dir, 'local-files');
    mkdirSync(files);
    const copies = [join(files, 'bootstrap')];
    copyFileSync(lazy[0]!.bootstrapPath, copies[0]!);
    for (const [i, b] of lazy[0]!.blobs.entries()) {
      copies.push(join(files, `blob${i + 1}`));
      copyFileSync(b.dataPath, copies[i + 1]!);
    }

    const on = new Map<Mode, Mounted>();
    const skipped = new Map<Mode, string>();
    for (const r of lazy) {
      const mountpoint = join(dir, `mnt-${r.mode}`);
      const privateDir = join(dir, `p-${r.mode}`);
      mkdirSync(mountpoint);
      ours.push(mountpoint, privateDir);
      const o = { mountpoint, privateDir, bootstrapPath: r.bootstrapPath, blobs: r.blobs, image: r.mode };
      const before = threads();
      const ra = await erofsReadAhead(async () => {
        r.m = r.mode === 'fuse-tree' ? await mountTransport(fuseTreeTransport, o) : await mountTransport(fuseBlobsTransport, o);
      });
      undo.push(`mount of ${r.mode}`, () => r.m!.unmount());
      // The session's reader thread and its copy threads: the threads the mount started (summed).
      const started = [...threads()].filter((t) => !before.has(t));
      const main = String(process.pid);
      const counters = (): Record<string, number> => {
        const s = r.m!.active.stats() as FuseTreeTransportStats | FuseBlobsTransportStats;
        const [mainRun, mainWait] = schedMs(main);
        const [readerRun, readerWait] = started.map(schedMs).reduce(([a, b], [c, d]) => [a + c, b + d], [0, 0]);
        return {
          requests: s.session.requests, READs: s.session.reads, fastReads: s.session.fastReads ?? 0, threadMetadata: s.session.threadMetadata ?? 0,
          mainRun, mainWait, readerRun, readerWait,
        };
      };
      on.set(r.mode, { mountpoint, under: [r.bootstrapPath, ...r.blobs.map((b) => b.dataPath)], readAheadKb: r.mode === 'fuse-tree' ? fuseReadAhead(mountpoint) : ra, counters });
    }
    {
      const mountpoint = join(dir, 'mnt-local');
      mkdirSync(mountpoint);
      ours.push(mountpoint);
      const localUndo = new UndoStack();
      const ra = await erofsReadAhead(() => new InProcessKernel().broker(localUndo).mount(copies[0]!, mountpoint, 'erofs', erofsMountFlags(false),
        copies.slice(1).map((p) => `device=${p}`).join(',')));
      undo.push('local mount', async () => { await localUndo.unwind(); });
      on.set('local', { mountpoint, under: copies, readAheadKb: ra, counters: () => ({}) });
    }
    const efuse = await erofsfuseBinary();
    if (efuse.path === undefined) {
      skipped.set('erofsfuse', efuse.reason ?? 'no binary');
    } else {
      const mountpoint = join(dir, 'mnt-erofsfuse');
      mkdirSync(mountpoint);
      ours.push(mountpoint);
      // -f: stays this process's child (ended by unmounting; killed by its pid if it lingers).
      const child = spawn(efuse.path, ['-f', ...copies.slice(1).map((p) => `--device=${p}`), copies[0]!, mountpoint], { stdio: ['ignore', 'ignore', 'pipe'] });
      erofsfuseProcess = child;
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
      try {
        await untilMounted(mountpoint, child, 10_000);
        on.set('erofsfuse', { mountpoint, under: copies, readAheadKb: fuseReadAhead(mountpoint), counters: () => ({}) });
      } catch (err) {
        skipped.set('erofsfuse', `${String(err)} ${stderr.trim()}`);
        child.kill('SIGTERM');
      }
    }
    for (const [mode, why] of skipped) process.stdout.write(`${mode}: rows skipped: ${why}\n`);
    const modes = MODES.filter((m) => on.has(m));

    // Unmeasured: the same bytes and the same tree through every mode.
    for (const mode of modes) {
      const mnt = on.get(mode)!.mountpoint;
      const { stdout } = await exec('sha256sum', [join(mnt, 'big')], { maxBuffer: 1 << 20 });
      if (stdout.split(' ')[0] !== bigSha) throw new Error(`${mode}: big reads wrong bytes`);
      const l = await listing(mnt);
      if (l !== srcListing) {
        const a = new Set(srcListing.split('\n'));
        const diff = l.split('\n').filter((x) => !a.has(x)).slice(0, 5);
        throw new Error(`${mode}: the tree differs from its source, e.g. ${diff.join(' | ')}`);
      }
    }
    // Everything written so far (caches, copies) on disk: posix_fadvise cannot evict dirty pages, and
    // writeback would compete with the first rows' reads.
    await exec('sync');
    process.stderr.write(`every mode: big's sha256 and the tree's listing equal the source's (${counts.paths} paths)\n`);

    if (process.env.FTB_HOLD) {
      writeFileSync(process.env.FTB_HOLD, JSON.stringify({ binary, statList, dirList, modes: Object.fromEntries([...on].map(([k, v]) => [k, { mnt: v.mountpoint, under: v.under }])) }, null, 1));
      process.stderr.write(`holding; kill -USR2 ${process.pid} to go on\n`);
      await new Promise((r) => process.once('SIGUSR2', r));
    }
    const allData = (): string[] => [...new Set(modes.flatMap((m) => [join(on.get(m)!.mountpoint, 'big'), ...on.get(m)!.under]))];
    const evictData = async (): Promise<void> => { await exec(binary, ['evict', ...allData()]); };
    const evictMeta = async (): Promise<void> => {
      await writeFile('/proc/sys/vm/drop_caches', '2');
      await exec(binary, ['evict', ...new Set(modes.map((m) => on.get(m)!.under[0]!))]);
    };
    const ROW: Record<Row, { before: () => Promise<void>; run: (mnt: string) => Promise<number> }> = {
      'warm seq': { before: evictData, run: (mnt) => fsops(binary, 'warm seq', ['seq', join(mnt, 'big')]) },
      'rand4k 1 job': { before: evictData, run: (mnt) => fio(join(mnt, 'big'), 1) },
      'rand4k 4 jobs': { before: evictData, run: (mnt) => fio(join(mnt, 'big'), 4) },
      stat: { before: evictMeta, run: (mnt) => fsops(binary, 'stat', ['stat', mnt, statList]) },
      readdir: { before: evictMeta, run: (mnt) => fsops(binary, 'readdir', ['readdir', mnt, dirList]) },
    };
    const results = new Map<Row, Map<Mode, number[]>>(ROWS.map((row) => [row, new Map(modes.map((m) => [m, []]))]));
    const requests = new Map<Row, Map<Mode, Record<string, number>>>(ROWS.map((row) => [row, new Map(modes.map((m) => [m, {}]))]));

    const loadStart = load();
    process.stdout.write(`load average at start: ${loadStart}\n`);
    const started = Date.now();
    for (let run = 0; run < runs; run++) {
      // Each run starts with another mode (A B C D, B C D A, ...): in this repository's benches the
      // first measurement after a row's preparation has run slower at times, whichever mode it was.
      const order = modes.map((_, i) => modes[(i + run) % modes.length]!);
      process.stderr.write(`run ${run + 1}/${runs}: ${order.join(', ')} (load ${load()})\n`);
      for (const row of ROWS) {
        for (const mode of order) {
          const m = on.get(mode)!;
          await ROW[row].before();
          const c0 = m.counters();
          const t1 = performance.now();
          const v = await ROW[row].run(m.mountpoint);
          const c1 = { ...m.counters(), wallMs: performance.now() - t1 };
          const acc = requests.get(row)!.get(mode)!;
          const delta = Object.fromEntries(Object.entries(c1).map(([k, x]) => [k, x - (c0[k] ?? 0)]));
          for (const [k, x] of Object.entries(delta)) acc[k] = (acc[k] ?? 0) + x;
          results.get(row)!.get(mode)!.push(v);
          const shown = Object.fromEntries(Object.entries(delta).map(([k, x]) => [k, Math.round(x)]));
          process.stderr.write(`  ${row.padEnd(14)} ${mode.padEnd(10)} ${fmt(v).padStart(9)} ${UNIT[row]} ${Object.keys(delta).length > 0 ? JSON.stringify(shown) : ''}\n`);
        }
      }
    }
    const seconds = (Date.now() - started) / 1000;

    const out = (s: string): boolean => process.stdout.write(s);
    const perRun = (row: Row, a: Mode, b: Mode): number[] => {
      const r = results.get(row)!;
      return r.get(a)!.map((v, i) => v / r.get(b)![i]!);
    };
    const has = (m: Mode): boolean => on.has(m);
    out(`\nfuse-tree: ${runs} runs in ${seconds.toFixed(0)} s, every row measured for ${modes.join(', ')} in turn, the first of them rotating from run to run; load average ${loadStart} at the start, ${load()} at the end\n`);
    out(`image: Debian bookworm minbase + big (${bigMiB} MiB random), ${built.stats.files} files, ${built.stats.dirs} dirs (${counts.paths} paths, ${counts.dirs} directories read), compression ${compression}; rand4k: fio, at most ${randSeconds} s per row, every read a page-cache miss\n`);
    out(`read_ahead_kb: ${modes.map((m) => `${m} ${on.get(m)!.readAheadKb}`).join(', ')}\n`);
    out('medians of the runs; ratios: median of the per-run ratios (same run), and fuse-tree / erofsfuse of each run\n');
    const cols = modes.map((m) => m.padStart(10)).join(' ');
    out(`${'row'.padEnd(14)} ${'unit'.padEnd(9)} ${cols}  ${'ft/local'.padStart(8)}  ${'ft/erofsfuse'.padStart(12)} ${'(per run)'.padStart(30)}\n`);
    for (const row of ROWS) {
      const r = results.get(row)!;
      const vals = modes.map((m) => fmt(median(r.get(m)!)).padStart(10)).join(' ');
      const vsLocal = has('local') ? `${median(perRun(row, 'fuse-tree', 'local')).toFixed(2)}x` : '-';
      const vsE = has('erofsfuse') ? perRun(row, 'fuse-tree', 'erofsfuse') : [];
      out(`${row.padEnd(14)} ${UNIT[row].padEnd(9)} ${vals}  ${vsLocal.padStart(8)}  ${(vsE.length > 0 ? `${median(vsE).toFixed(2)}x` : '-').padStart(12)} ${vsE.map((x) => x.toFixed(2)).join(' ').padStart(30)}\n`);
    }
    out('fuse-tree per row, means of the runs: the measurement\'s wall time (child start-up included), FUSE requests main thread + READs the reader thread\n'
      + 'answered (metadata requests the reader thread answered among the requests), and CPU time / time runnable but waiting for a CPU\n'
      + '(schedstat) of this process\'s main thread and of the mount\'s reader and copy threads together\n');
    out(`${'row'.padEnd(14)} ${'wall ms'.padStart(8)} ${'requests'.padStart(9)} ${'(thread)'.padStart(9)} ${'READs'.padStart(7)} ${'main cpu/wait ms'.padStart(17)} ${'threads cpu/wait ms'.padStart(20)}\n`);
    for (const row of ROWS) {
      const req = requests.get(row)!.get('fuse-tree')!;
      const per = (k: string): string => ((req[k] ?? 0) / runs).toFixed(0);
      out(`${row.padEnd(14)} ${per('wallMs').padStart(8)} ${per('requests').padStart(9)} ${per('threadMetadata').padStart(9)} ${per('fastReads').padStart(7)} ${`${per('mainRun')}/${per('mainWait')}`.padStart(17)} ${`${per('readerRun')}/${per('readerWait')}`.padStart(20)}\n`);
    }
    if (has('erofsfuse')) {
      const behind = ROWS.filter((row) => median(perRun(row, 'fuse-tree', 'erofsfuse')) <= 1);
      out(`target fuse-tree ahead of erofsfuse on every row: ${behind.length === 0 ? 'met' : `MISSED (${behind.join(', ')})`}\n`);
    } else {
      out(`target fuse-tree ahead of erofsfuse on every row: not measured (${skipped.get('erofsfuse') ?? ''})\n`);
    }
    const seq = median(perRun('warm seq', 'fuse-tree', 'local'));
    out(`target warm seq >= ${WARM_SEQ_TARGET}x local: ${seq >= WARM_SEQ_TARGET ? 'met' : 'MISSED'} (${seq.toFixed(2)}x)\n`);
  } finally {
    stopWatching();
    await cleanUp();
  }
}

await main();
