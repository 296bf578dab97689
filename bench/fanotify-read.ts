/**
 * One image read three ways on this host, side by side in one run, every mount made by the shipped
 * code (test/helpers/transport-mount.ts: the transport, an in-process kernel broker, the daemon's cache
 * options, a local fetcher reading the OCI layout `ondemand build` wrote):
 *   local       the image's bootstrap and blob files (complete copies) mounted file-backed by the broker
 *   fanotify    fanotifyTransport: erofs file-backed over the cache's sparse data files, marked
 *               FAN_PRE_ACCESS; this process fills their holes when the kernel is about to read them
 *   fuse-blobs  fuseBlobsTransport with this kernel's features (passthrough for complete blobs)
 * The image (built by the project's builder, compression as given): 4 big files of random bytes and
 * many small files in directories, every second small file with two user xattrs.
 *
 * Each run makes the fanotify and fuse-blobs mounts anew over an empty cache, then measures every row
 * for local, fanotify, fuse-blobs in turn, interleaved so drift cancels; the mode that goes first
 * rotates from run to run (A B C, B C A, C A B: the first read after a row's preparation ran slower
 * in some rows, whichever mode it was):
 *   cold seq      read of the big files, 1 MiB read(2)s; the cache empty; before it the files read, the
 *                 files under them (bootstrap, blob copies / cache data files) and the layout's blobs
 *                 (the fetcher's source) evicted from the page cache, those of every mode
 *   (then the blobs are completed by prefetch and the transport told, as MountManager does)
 *   warm seq      the same read, blob complete, the same eviction
 *   rand4k 1/4    4 KiB preads at random pages of the big files, by 1 and by 4 processes, same eviction
 *   stat          lstat of every file and directory, after `echo 2 > drop_caches` (dentries, inodes)
 *                 and the bootstrap evicted
 *   readdir       every entry of every directory, the same
 *   getxattr      both xattrs of every small file that has them, the same
 *   warm seq new  warm seq again on a mount made over the complete cache (what a second container of
 *                 the image gets; fuse-blobs then uses passthrough, fanotify keeps the default readahead)
 * Eviction is per file (posix_fadvise DONTNEED), not drop_caches 3: on this VM memory freed in bulk
 * goes back to the host and faults in again at random (see bench/fuse-read.ts); free page reporting is
 * deferred for the run. Every read of a mount is done by bench/fsops.c in a child process: a process
 * serving fanotify events has its own reads allowed unfilled, so this one never reads a mount.
 * Cold reads are checked (sha256 of the big files right after, unmeasured); the last run compares the
 * whole tree with its source (diff -r).
 *   node dist/bench/fanotify-read.js [runs=11] [bigMiB=256] [randReads=20000] [smallFiles=10000] [compression=none]
 */
import { execFile } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildDirectoryToLayout } from '../src/build/to-layout.js';
import { openCache, type Cache } from '../src/cache/backend.js';
import type { CachedBlob } from '../src/cache/types.js';
import { cacheOptions } from '../src/daemon/worker.js';
import type { Compression } from '../src/format/image/types.js';
import { openPinnedImage } from '../src/mount/pinned-image.js';
import { erofsBdis, newErofsBdi } from '../src/native/bdi.js';
import { MNT_DETACH, umount2 } from '../src/native/libc.js';
import { setXattr } from '../src/native/xattr.js';
import { resolveImage } from '../src/resolve/index.js';
import { fanotifyServer, fanotifyTransport } from '../src/transport/fanotify/transport.js';
import type { FanotifyStats } from '../src/transport/fanotify/server.js';
import { fuseBlobsTransport, type FuseBlobsTransportStats } from '../src/transport/fuse-blobs/transport.js';
import { InProcessKernel } from '../src/transport/in-process-kernel.js';
import { erofsMountFlags } from '../src/transport/kernel-objects.js';
import type { ActiveTransport, Transport } from '../src/transport/types.js';
import { UndoStack } from '../src/util/undo-stack.js';
import { hostFeatures, mountTransport, type TransportMount } from '../test/helpers/transport-mount.js';
import { deferFreePageReporting } from './free-page-reporting.js';

const exec = promisify(execFile);
const runs = Number(process.argv[2] ?? 11);
const bigMiB = Number(process.argv[3] ?? 256);
const randReads = Number(process.argv[4] ?? 20000);
const smallFiles = Number(process.argv[5] ?? 10000);
const compression = (process.argv[6] ?? 'none') as Compression;

const BIG_FILES = 4;
const FILES_PER_DIR = 10;
const XATTRS = ['user.bench.a', 'user.bench.b'];
const TAG = 'bench';
const MODES = ['local', 'fanotify', 'fuse-blobs'] as const;
type Mode = (typeof MODES)[number];
const ROWS = ['cold seq', 'warm seq', 'rand4k 1 job', 'rand4k 4 jobs', 'stat', 'readdir', 'getxattr', 'warm seq new'] as const;
type Row = (typeof ROWS)[number];
const UNIT: Record<Row, string> = {
  'cold seq': 'MiB/s', 'warm seq': 'MiB/s', 'rand4k 1 job': 'IOPS', 'rand4k 4 jobs': 'IOPS',
  stat: 'files/s', readdir: 'entries/s', getxattr: 'calls/s', 'warm seq new': 'MiB/s',
};

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** What a child process measured: fsops' "MS OPS BYTES". */
interface Measured { ms: number; ops: number; bytes: number }

async function fsops(binary: string, args: string[]): Promise<Measured> {
  const { stdout } = await exec(binary, args, { maxBuffer: 1 << 20 });
  const [ms, ops, bytes] = stdout.trim().split(' ').map(Number);
  return { ms: ms!, ops: ops!, bytes: bytes! };
}

/** A figure where more is better: MiB/s for reads of bytes, else operations per second. */
function rate(row: Row, m: Measured): number {
  return UNIT[row] === 'MiB/s' ? m.bytes / 1048576 / (m.ms / 1000) : m.ops / (m.ms / 1000);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** xorshift32 bytes: small files differ from each other, deterministically. */
function pseudoRandom(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

interface Tree {
  big: string[];
  bigSha: string[];
  statList: string;
  dirList: string;
  xattrList: string;
  entries: number;
}

/** The source tree, and the lists fsops walks (paths relative to the root, one a line). */
function makeTree(src: string, listDir: string): Tree {
  mkdirSync(src);
  const big: string[] = [];
  const bigSha: string[] = [];
  const chunk = Buffer.allocUnsafe(1 << 20);
  for (let i = 0; i < BIG_FILES; i++) {
    const name = `big${i}`;
    const h = createHash('sha256');
    const parts: Buffer[] = [];
    for (let m = 0; m < bigMiB / BIG_FILES; m++) {
      randomFillSync(chunk);
      h.update(chunk);
      parts.push(Buffer.from(chunk));
    }
    writeFileSync(join(src, name), Buffer.concat(parts));
    big.push(name);
    bigSha.push(h.digest('hex'));
  }
  const stat = [...big];
  const dirs = ['.'];
  const xattrs: string[] = [];
  for (let i = 0; i < smallFiles; i++) {
    const dir = `d${Math.floor(i / FILES_PER_DIR)}`;
    if (i % FILES_PER_DIR === 0) {
      mkdirSync(join(src, dir));
      dirs.push(dir);
      stat.push(dir);
    }
    const file = `${dir}/f${i}`;
    // 1-13 KiB: some inline in the bootstrap, most in the blob.
    writeFileSync(join(src, file), pseudoRandom(1024 + ((i * 7919) % (12 * 1024)), i + 1));
    stat.push(file);
    if (i % 2 === 0) {
      setXattr(join(src, file), XATTRS[0]!, Buffer.from(`v${i}`));
      setXattr(join(src, file), XATTRS[1]!, pseudoRandom(200, i + 7));
      for (const x of XATTRS) xattrs.push(`${file}\t${x}`);
    }
  }
  const list = (name: string, lines: string[]): string => {
    const p = join(listDir, name);
    writeFileSync(p, `${lines.join('\n')}\n`);
    return p;
  };
  return { big, bigSha, statList: list('stat.list', stat), dirList: list('dirs.list', dirs), xattrList: list('xattr.list', xattrs), entries: stat.length };
}

/** The erofs bdi made by `mount` and its read_ahead_kb, for the record. */
async function readAheadOf(mount: () => Promise<void>): Promise<string> {
  const before = erofsBdis();
  await mount();
  const bdi = newErofsBdi(before, erofsBdis());
  return bdi === undefined ? '?' : readFileSync(`/sys/class/bdi/${bdi}/read_ahead_kb`, 'utf8').trim();
}

/** One image opened in one cache as MountManager.prepare does: bootstrap in the cache, blobs pinned. */
async function prepareImage(ref: string, cache: Cache, undo: UndoStack): Promise<{ bootstrapPath: string; blobs: CachedBlob[] }> {
  return openPinnedImage(await resolveImage(ref), cache, undo);
}

/** A mode's mount this run: where its files are and what lies under them. */
interface Mounted {
  mountpoint: string;
  /** Files under the mount (bootstrap, blob data files, FUSE blob files) and the fetcher's source files. */
  under: () => string[];
  /** Counters sampled around each measurement. */
  counters: () => Record<string, number>;
}

/** A lazy mode's state in one run: its own empty cache, the image prepared in it, the mount. */
interface LazyRun {
  mode: Exclude<Mode, 'local'>;
  cache: Cache;
  undo: UndoStack;
  blobs: CachedBlob[];
  bootstrapPath: string;
  m?: TransportMount<ActiveTransport>;
  readAheadKb: string;
}

async function main(): Promise<void> {
  const fanotify = hostFeatures().fanotifyPreContent;
  if (!fanotify.supported) {
    process.stdout.write(`fanotify-read: skipped, no fanotify pre-content events here (${fanotify.reason ?? ''})\n`);
    return;
  }
  const restoreReporting = deferFreePageReporting();
  const dir = mkdtempSync('/var/tmp/ondemand-bench-fan-');
  const mountpoints: string[] = [];
  const finally_: (() => Promise<void>)[] = [];
  try {
    const binary = join(dir, 'fsops');
    await exec('cc', ['-O2', '-Wall', '-o', binary, join(repo, 'bench', 'fsops.c')]);
    const src = join(dir, 'src');
    const t0 = Date.now();
    const tree = makeTree(src, dir);
    const layout = join(dir, 'layout');
    const built = await buildDirectoryToLayout(src, layout, TAG, { compression });
    const ref = `oci:${layout}:${TAG}`;
    const layoutBlobs = built.blobs.map((b) => join(layout, 'blobs', 'sha256', b.digest.replace(/^sha256:/, '')));
    process.stderr.write(`image built in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${built.blobs.length} blob(s) of ${built.blobs.map((b) => `${b.frames} frames, ${(b.uncompressedSize / 1048576).toFixed(0)} MiB`).join('; ')}, ${compression}; bootstrap ${built.bootstrap.uncompressedSize} B\n`);

    // local: complete copies of the bootstrap and the blobs' uncompressed views, made through a cache of their own.
    const localFiles = join(dir, 'local-files');
    mkdirSync(localFiles);
    const localCopies: string[] = [];
    {
      const undo = new UndoStack();
      const cache = await openCache(cacheOptions(join(dir, 'local-cache')));
      try {
        const p = await prepareImage(ref, cache, undo);
        await Promise.all(p.blobs.map((b) => b.prefetch()));
        copyFileSync(p.bootstrapPath, join(localFiles, 'bootstrap'));
        localCopies.push(join(localFiles, 'bootstrap'));
        for (const [i, b] of p.blobs.entries()) {
          if (!b.isComplete()) throw new Error('local copy: prefetch left a blob incomplete');
          copyFileSync(b.dataPath, join(localFiles, `blob${i + 1}`));
          localCopies.push(join(localFiles, `blob${i + 1}`));
        }
      } finally {
        await undo.unwind();
        await cache.close();
        rmSync(join(dir, 'local-cache'), { recursive: true, force: true });
      }
    }
    const localMnt = join(dir, 'mnt-local');
    mkdirSync(localMnt);
    const localUndo = new UndoStack();
    mountpoints.push(localMnt);
    finally_.push(async () => { await localUndo.unwind(); });
    const localRa = await readAheadOf(() => new InProcessKernel().broker(localUndo).mount(localCopies[0]!, localMnt, 'erofs', erofsMountFlags(false),
      localCopies.slice(1).map((p) => `device=${p}`).join(',')));
    const local: Mounted = { mountpoint: localMnt, under: () => localCopies, counters: () => ({}) };

    const fan = async (): Promise<FanotifyStats | undefined> => (await fanotifyServer())?.stats();
    const fanNow: { s: FanotifyStats | undefined } = { s: undefined };
    const mountLazy = async (r: LazyRun, name: string): Promise<void> => {
      const transport: Transport = r.mode === 'fanotify' ? fanotifyTransport : fuseBlobsTransport;
      const mountpoint = join(dir, `mnt-${r.mode}`);
      const privateDir = join(dir, `p-${r.mode}`);
      mkdirSync(mountpoint, { recursive: true });
      if (!mountpoints.includes(mountpoint)) mountpoints.push(mountpoint, privateDir);
      r.readAheadKb = await readAheadOf(async () => {
        r.m = await mountTransport(transport, { mountpoint, privateDir, bootstrapPath: r.bootstrapPath, blobs: r.blobs, image: name });
      });
    };
    const lazyMounted = (r: LazyRun): Mounted => ({
      mountpoint: join(dir, `mnt-${r.mode}`),
      // fuse-blobs' FUSE blob files keep no page cache here (direct-io while a blob has holes,
      // passthrough once complete), and opening one to evict it could mix the two on its inode.
      under: () => [r.bootstrapPath, ...r.blobs.map((b) => b.dataPath), ...layoutBlobs],
      counters: (): Record<string, number> => {
        if (r.mode === 'fanotify') {
          const s = fanNow.s;
          return s ? { events: s.events, threadAllowed: s.threadAllowed, ownEvents: s.ownEvents, ignoreMarks: s.ignoreMarks, denied: s.denied } : {};
        }
        const s = r.m?.active.stats() as FuseBlobsTransportStats | undefined;
        return s ? { READs: s.session.reads, passthroughOpens: s.passthroughOpens } : {};
      },
    });

    // results[row][mode][run]
    const results = new Map<Row, Map<Mode, number[]>>(ROWS.map((row) => [row, new Map(MODES.map((m) => [m, []]))]));
    const counts = new Map<Row, Map<Mode, Record<string, number>>>(ROWS.map((row) => [row, new Map(MODES.map((m) => [m, {}]))]));
    const readAhead: Record<string, Set<string>> = { local: new Set([localRa]), 'fanotify cold': new Set(), 'fuse-blobs cold': new Set(), 'fanotify new': new Set(), 'fuse-blobs new': new Set() };
    const bigOn = (mnt: string): string[] => tree.big.map((b) => join(mnt, b));
    const evict = async (files: string[]): Promise<void> => { await fsops(binary, ['evict', ...files]); };

    const measure = async (row: Row, mode: Mode, on: Mounted, args: (mnt: string) => string[], before: () => Promise<void>): Promise<void> => {
      await before();
      fanNow.s = await fan();
      const c0 = on.counters();
      const m = await fsops(binary, args(on.mountpoint));
      fanNow.s = await fan();
      const c1 = on.counters();
      const acc = counts.get(row)!.get(mode)!;
      for (const [k, v] of Object.entries(c1)) acc[k] = (acc[k] ?? 0) + v - (c0[k] ?? 0);
      results.get(row)!.get(mode)!.push(rate(row, m));
      process.stderr.write(`  ${row.padEnd(14)} ${mode.padEnd(10)} ${rate(row, m).toFixed(0).padStart(8)} ${UNIT[row]} (${m.ms.toFixed(1)} ms) ${JSON.stringify(Object.fromEntries(Object.entries(c1).map(([k, v]) => [k, v - (c0[k] ?? 0)])))}\n`);
    };
    const evictData = (on: Mounted) => () => evict([...bigOn(on.mountpoint), ...on.under()]);
    const evictMeta = (on: Mounted) => async () => {
      await writeFile('/proc/sys/vm/drop_caches', '2');
      await evict(on.under().slice(0, 1));
    };
    const seqArgs = (mnt: string): string[] => ['seq', ...bigOn(mnt)];
    const ROW_ARGS: Record<Exclude<Row, 'cold seq' | 'warm seq' | 'warm seq new'>, (mnt: string) => string[]> = {
      'rand4k 1 job': (mnt) => ['rand', '1', String(randReads), '1', ...bigOn(mnt)],
      'rand4k 4 jobs': (mnt) => ['rand', '4', String(randReads), '1', ...bigOn(mnt)],
      stat: (mnt) => ['stat', mnt, tree.statList],
      readdir: (mnt) => ['readdir', mnt, tree.dirList],
      getxattr: (mnt) => ['getxattr', mnt, tree.xattrList],
    };
    const checkBig = async (mode: Mode, mnt: string): Promise<void> => {
      const { stdout } = await exec('sha256sum', bigOn(mnt), { maxBuffer: 1 << 20 });
      const got = stdout.trim().split('\n').map((l) => l.split(' ')[0]);
      if (got.join() !== tree.bigSha.join()) throw new Error(`${mode}: the big files read wrong bytes after the cold read`);
    };

    process.stdout.write(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
    const started = Date.now();
    for (let run = 0; run < runs; run++) {
      // Each run starts with another mode (A B C, B C A, C A B, ...): no mode always comes first.
      const order = MODES.map((_, i) => MODES[(i + run) % MODES.length]!);
      process.stderr.write(`run ${run + 1}/${runs}: ${order.join(', ')}\n`);
      const lazy: LazyRun[] = [];
      try {
        for (const mode of ['fanotify', 'fuse-blobs'] as const) {
          const cacheDir = join(dir, `cache-${mode}-${run}`);
          const r: LazyRun = { mode, cache: await openCache(cacheOptions(cacheDir)), undo: new UndoStack(), blobs: [], bootstrapPath: '', readAheadKb: '?' };
          lazy.push(r);
          r.undo.push('cache dir', () => rmSync(cacheDir, { recursive: true, force: true }));
          r.undo.push('cache', () => r.cache.close());
          Object.assign(r, await prepareImage(ref, r.cache, r.undo));
          await mountLazy(r, `${mode}-${run}`);
          readAhead[`${mode} cold`]!.add(r.readAheadKb);
        }
        const on: Record<Mode, Mounted> = { local, fanotify: lazyMounted(lazy[0]!), 'fuse-blobs': lazyMounted(lazy[1]!) };

        // Every mode's files evicted before each cold read, not only its own: a mode that ran after
        // another paid for reclaiming that one's ~0.75 GiB of page cache (fanotify 0.28 GB/s right
        // after local, 0.5 GB/s otherwise, in the same run).
        const evictAll = (): Promise<void> => evict([...new Set(MODES.flatMap((m) => [...bigOn(on[m].mountpoint), ...on[m].under()]))]);
        for (const mode of order) {
          await measure('cold seq', mode, on[mode], seqArgs, evictAll);
          await checkBig(mode, on[mode].mountpoint);
        }
        // Complete the blobs (background prefetch, then the transport told, as MountManager does).
        for (const r of lazy) {
          await Promise.all(r.blobs.map((b) => b.prefetch()));
          if (!r.blobs.every((b) => b.isComplete())) throw new Error(`${r.mode}: prefetch left a blob incomplete`);
          await r.m?.active.blobsComplete?.();
        }
        for (const mode of order) await measure('warm seq', mode, on[mode], seqArgs, evictData(on[mode]));
        for (const row of ['rand4k 1 job', 'rand4k 4 jobs'] as const) {
          for (const mode of order) await measure(row, mode, on[mode], ROW_ARGS[row], evictData(on[mode]));
        }
        for (const row of ['stat', 'readdir', 'getxattr'] as const) {
          for (const mode of order) await measure(row, mode, on[mode], ROW_ARGS[row], evictMeta(on[mode]));
        }
        // A new mount over the complete cache.
        for (const r of lazy) {
          await r.m?.unmount();
          delete r.m;
          await mountLazy(r, `${r.mode}-${run}-new`);
          readAhead[`${r.mode} new`]!.add(r.readAheadKb);
        }
        for (const mode of order) await measure('warm seq new', mode, on[mode], seqArgs, evictData(on[mode]));
        if (run === runs - 1) {
          for (const mode of MODES) {
            await exec('diff', ['-r', src, on[mode].mountpoint], { maxBuffer: 1 << 24 }).catch((err: unknown) => {
              throw new Error(`${mode}: the tree differs from its source: ${String(err).slice(0, 2000)}`);
            });
          }
          process.stderr.write('every mode: the tree equals its source (diff -r)\n');
        }
      } finally {
        for (const r of lazy.reverse()) {
          const failures: string[] = [];
          if (r.m) await r.m.unmount().catch((err: unknown) => failures.push(String(err)));
          failures.push(...(await r.undo.unwind()));
          if (failures.length > 0) process.stderr.write(`cleanup of ${r.mode}: ${failures.join('; ')}\n`);
        }
      }
    }
    const seconds = (Date.now() - started) / 1000;

    const fmt = (v: number): string => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
    const out = (s: string): boolean => process.stdout.write(s);
    out(`\nfanotify-read: ${runs} runs in ${seconds.toFixed(0)} s; ${BIG_FILES} files of ${bigMiB / BIG_FILES} MiB (seq, rand4k: ${randReads} reads), ${smallFiles} small files in ${Math.ceil(smallFiles / FILES_PER_DIR)} dirs (${tree.entries} entries), ${smallFiles / 2} with 2 xattrs; compression ${compression}\n`);
    out(`erofs read_ahead_kb: local ${[...readAhead.local!].join('/')}, fanotify ${[...readAhead['fanotify cold']!].join('/')} (new mount ${[...readAhead['fanotify new']!].join('/')}), fuse-blobs ${[...readAhead['fuse-blobs cold']!].join('/')} (new mount ${[...readAhead['fuse-blobs new']!].join('/')})\n`);
    out(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
    out('medians of the runs; ratio = median of the per-run ratios to local (the same run); (runs): fanotify\'s lowest and highest per-run ratio\n');
    out(`${'row'.padEnd(14)} ${'unit'.padEnd(9)} ${'local'.padStart(9)} ${'fanotify'.padStart(9)} ${'ratio'.padStart(6)} ${'(runs)'.padStart(11)} ${'fuse-blobs'.padStart(10)} ${'ratio'.padStart(6)}  fan/fuse  fanotify events/run main+thread (own, ignore marks)  fuse READs/run\n`);
    const ratiosOf = (row: Row, mode: Mode): number[] => {
      const base = results.get(row)!.get('local')!;
      return results.get(row)!.get(mode)!.map((v, i) => v / base[i]!);
    };
    const ratioOf = (row: Row, mode: Mode): number => median(ratiosOf(row, mode));
    for (const row of ROWS) {
      const r = results.get(row)!;
      const med = (mode: Mode): number => median(r.get(mode)!);
      const fc = counts.get(row)!.get('fanotify')!;
      const uc = counts.get(row)!.get('fuse-blobs')!;
      const per = (v: number | undefined): string => ((v ?? 0) / runs).toFixed(0);
      const fanFuse = median(r.get('fanotify')!.map((v, i) => v / r.get('fuse-blobs')![i]!));
      out(`${row.padEnd(14)} ${UNIT[row].padEnd(9)} ${fmt(med('local')).padStart(9)} ${fmt(med('fanotify')).padStart(9)} ${ratioOf(row, 'fanotify').toFixed(2).padStart(5)}x ${`${Math.min(...ratiosOf(row, 'fanotify')).toFixed(2)}-${Math.max(...ratiosOf(row, 'fanotify')).toFixed(2)}`.padStart(11)} ${fmt(med('fuse-blobs')).padStart(10)} ${ratioOf(row, 'fuse-blobs').toFixed(2).padStart(5)}x  ${fanFuse.toFixed(2).padStart(7)}x  ${`${per(fc.events)}+${per(fc.threadAllowed)} (${per(fc.ownEvents)}, ${per(fc.ignoreMarks)})`.padStart(49)}  ${per(uc.READs).padStart(14)}\n`);
    }
    const warmRows = ROWS.filter((r) => r !== 'cold seq');
    const worstWarm = Math.min(...warmRows.map((r) => ratioOf(r, 'fanotify')));
    const cold = ratioOf('cold seq', 'fanotify');
    out(`target warm >= 0.95x local on every row: ${worstWarm >= 0.95 ? 'met' : 'MISSED'} (lowest ${worstWarm.toFixed(2)}x, ${warmRows.filter((r) => ratioOf(r, 'fanotify') < 0.95).join(', ') || 'no row under'})\n`);
    out(`target cold >= 0.5x local: ${cold >= 0.5 ? 'met' : 'MISSED'} (${cold.toFixed(2)}x)\n`);
    const fs = results.get('warm seq')!;
    out(`fanotify / fuse-blobs, warm seq: ${median(fs.get('fanotify')!.map((v, i) => v / fs.get('fuse-blobs')![i]!)).toFixed(2)}x (same mount), new mount: ${median(results.get('warm seq new')!.get('fanotify')!.map((v, i) => v / results.get('warm seq new')!.get('fuse-blobs')![i]!)).toFixed(2)}x\n`);
  } finally {
    for (const c of finally_.reverse()) await c().catch((e: unknown) => process.stderr.write(`cleanup: ${String(e)}\n`));
    for (const m of mountpoints) umount2(m, MNT_DETACH);
    rmSync(dir, { recursive: true, force: true });
    restoreReporting();
    // Every mount is gone: stop the event thread (it sits in poll(2), and the process cannot exit while
    // it does; its Worker is unref'd, hence the interval while waiting for it) and remove the journal
    // InProcessKernel named after this process.
    const keepAlive = setInterval(() => undefined, 1000);
    try {
      await (await fanotifyServer()?.catch(() => null))?.stop();
    } finally {
      clearInterval(keepAlive);
    }
    rmSync(join(tmpdir(), `ondemand-fanotify-${process.pid}.journal`), { force: true });
  }
}

await main();
