/**
 * `ondemand bench`: every mode this host can serve, and `local`, measured on one image with the same
 * workloads, runs interleaved (the order of the modes rotates from run to run: A B C, B C A, ...).
 *
 * Lazy modes are mounted by the shipped daemon (a daemon of the bench's own: daemon.ts) through its
 * control socket, as `ondemand mount --mode X` does; `local` by the same kernel-object functions over
 * complete local files (local.ts). For each run, workload and mode, in turn:
 *   cold  the daemon restarted over an emptied cache dir; a new mount (timed); the workload.
 *         local: its files' page cache dropped; a new mount; the workload.
 *   (the cache completed: a mount with prefetch, until the daemon says it is done, unmounted)
 *   warm  the page cache of every cache file dropped (local: of its files); a new mount; the workload.
 *   hot   the workload again on the warm mount.
 * A mode that fails (mount, workload, unmount) is reported with its error and left out from then on;
 * the others go on. Whatever happens, every mount is gone at the end: the daemon unmounts what it
 * serves when stopped, and anything still mounted under the bench's work dir is detached and reported.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, hostname, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { ResolvedConfig } from '../config/resolve.js';
import { detect, modeUsable } from '../mount/mode-choice.js';
import { readMountInfo } from '../util/mountinfo.js';
import type { MountModeRequest } from '../mount/types.js';
import { MNT_DETACH, umount2 } from '../native/libc.js';
import type { Features } from '../transport/kernel-features.js';
import { MOUNT_MODES } from '../transport/types.js';
import { errorText, UsageError } from '../util/errors.js';
import { log } from '../util/log.js';
import { VERSION } from '../util/version.js';
import { BenchDaemon, cpuMs, type ImageAccess } from './daemon.js';
import { makeLocalCopy, mountLocal, type LocalCopy, type LocalMount } from './local.js';
import { runOps, seqRandReader } from './ops.js';
import type { OpsSpec } from './ops-spec.js';
import { pullAndStart } from './pull.js';
import { runStartup, type StartupCommand } from './startup.js';
import { evictUnder, LARGEST_FILES, listTree, type TreeLists } from './tree.js';
import {
  BENCH_SCHEMA, PHASES, UNITS, WORKLOADS, type BenchCell, type BenchReport, type BenchSample, type ComparePull, type Measured, type ModeOutcome,
  type Phase, type PullSample, type Workload,
} from './types.js';
import { makeDirs } from '../util/make-dirs.js';

export const DEFAULT_RAND_READS = 50_000;
const MiB = 1024 * 1024;
const SEQ_BLOCK = MiB;
/** What the hot sequential read reads in all (see seqPasses). */
export const HOT_SEQ_BYTES = 512 * MiB;

export interface BenchOptions {
  image: string;
  access: ImageAccess;
  /** The caller's configuration; the bench's daemon runs with it, its cache dir and metrics endpoint its own. */
  config: ResolvedConfig;
  /** `auto`: every mode this host can serve; `all`: every mode there is (those that cannot work fail); or a list. */
  modes: 'auto' | 'all' | string[];
  /** Default: every workload (start-up only with `run`). */
  workloads?: Workload[];
  runs: number;
  run?: StartupCommand;
  /** `--compare-pull`: the unconverted image to pull in full for the start-up comparison. */
  comparePull?: string;
  randReads?: number;
  /** How many of the image's largest files the seq and rand workloads read (default LARGEST_FILES). */
  largestFiles?: number;
  /** Where the bench makes its directory (run dir, cache, local copy, mountpoints); default /var/tmp. */
  workDir?: string;
  /** Progress lines (stderr). */
  progress?: (line: string) => void;
  hooks?: BenchHooks;
}

/** What a measurement leaves for a hook: the mount in the state the phase left it. */
export interface MeasuredContext {
  mode: string;
  workload: Workload;
  phase: Phase;
  run: number;
  mountpoint: string;
  /** The seq/rand workloads' files on this mount (absolute). */
  largest: string[];
  sample: BenchSample;
  /** Drops the page cache of the files under this mode's mount (what warm does before it mounts). */
  evict: () => void;
}

export interface BenchHooks {
  /** After each measurement, before the next step (benchmarks run other tools on the same mount here). */
  afterMeasure?: (m: MeasuredContext) => Promise<void>;
  /** When a mode's mount has just been made (tests use it to break a mode on purpose). */
  mounted?: (mode: string, mountpoint: string, phase: Phase) => Promise<void>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function medianOrNull(xs: (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null);
  return v.length === 0 ? null : median(v);
}

/** The modes to measure besides `local`. */
export function chooseBenchModes(request: BenchOptions['modes'], features: Features, usable: (m: (typeof MOUNT_MODES)[number], f: Features) => boolean): string[] {
  if (request === 'auto') return MOUNT_MODES.filter((m) => usable(m, features));
  if (request === 'all') return [...MOUNT_MODES];
  for (const m of request) {
    if (!(MOUNT_MODES as readonly string[]).includes(m)) throw new UsageError(`--modes: unknown mode ${m} (modes: ${MOUNT_MODES.join(', ')}; or auto, all)`);
  }
  return [...new Set(request)];
}

export function defaultWorkloads(withRun: boolean): Workload[] {
  return WORKLOADS.filter((w) => w !== 'startup' || withRun);
}

/** The headline figure of a measurement in its workload's unit. */
export function headline(workload: Workload, m: Measured): number {
  const s = m.wallMs / 1000;
  switch (UNITS[workload]) {
    case 's': return s;
    case 'MiB/s': return m.bytes / MiB / s;
    default: return m.ops / s;
  }
}

/** Mounts under `prefix` (this process's mount namespace), deepest first. */
function mountsUnder(prefix: string): string[] {
  return readMountInfo()
    .map((m) => m.mountpoint)
    .filter((mp) => mp === prefix || mp.startsWith(`${prefix}/`))
    .reverse();
}

interface Ctx {
  opts: Required<Pick<BenchOptions, 'runs' | 'randReads'>> & BenchOptions;
  features: Features;
  dir: string;
  daemon: BenchDaemon;
  copy: LocalCopy;
  lists: TreeLists;
  say: (line: string) => void;
}

/** One mode's mount for a phase: where, how to unmount it, the daemon figures to sample. */
interface PhaseMount {
  mountpoint: string;
  mountMs: number;
  unmount: () => Promise<void>;
  /** [bytes fetched, requests, daemon CPU ms] so far. */
  figures: () => Promise<[number, number, number]>;
}

/**
 * Passes of the hot sequential read: the page cache serves ~50 MiB in a few ms, too short a time to
 * measure against per-run noise (a context switch, a timer tick), so the hot run reads the files over
 * until it has read HOT_SEQ_BYTES. Cold and warm read them once: a second pass would be hot.
 */
function seqPasses(c: Ctx, phase: Phase): number {
  return phase === 'hot' ? Math.max(1, Math.ceil(HOT_SEQ_BYTES / Math.max(1, c.lists.largestBytes))) : 1;
}

function opsSpecs(c: Ctx, workload: Exclude<Workload, 'startup'>, root: string, run: number, phase: Phase): OpsSpec[] {
  const largest = c.lists.largest.map((p) => join(root, p));
  switch (workload) {
    case 'seq': return [{ op: 'seq', files: largest, blockSize: SEQ_BLOCK, passes: seqPasses(c, phase) }];
    case 'rand1': return [{ op: 'rand', files: largest, reads: c.opts.randReads, seed: run }];
    case 'rand4': return [0, 1, 2, 3].map((j) => ({ op: 'rand', files: largest, reads: Math.floor(c.opts.randReads / 4) + (j < c.opts.randReads % 4 ? 1 : 0), seed: run * 16 + j + 1 }));
    case 'stat': return [{ op: 'stat', root, list: c.lists.entries }];
    case 'readdir': return [{ op: 'readdir', root, list: c.lists.dirs }];
    case 'tree': return [{ op: 'tree', root, list: c.lists.files, blockSize: SEQ_BLOCK }];
  }
}

/** Runs `workload` on the mount and builds its sample. */
async function measure(c: Ctx, workload: Workload, run: number, phase: Phase, m: PhaseMount, mountMs: number | null): Promise<BenchSample> {
  const before = await m.figures();
  let measured: Measured;
  let ended: Pick<BenchSample, 'ended' | 'exitCode'> = {};
  if (workload === 'startup') {
    const r = await runStartup(m.mountpoint, join(c.dir, 'startup'), c.opts.run!);
    measured = { wallMs: r.wallMs, ops: 1, bytes: 0, p50Us: null, p99Us: null };
    ended = { ended: r.ended, exitCode: r.exitCode };
  } else {
    measured = await runOps(opsSpecs(c, workload, m.mountpoint, run, phase), `${workload} on ${m.mountpoint}`);
  }
  const after = await m.figures();
  return {
    run, ...measured, value: headline(workload, measured), mountMs,
    fetchedBytes: after[0] - before[0], fetchedRequests: after[1] - before[1], daemonCpuMs: after[2] - before[2],
    ...ended,
  };
}

async function timedMount(make: () => Promise<Omit<PhaseMount, 'mountMs'>>): Promise<PhaseMount> {
  const t0 = performance.now();
  const m = await make();
  return { ...m, mountMs: performance.now() - t0 };
}

/** Mounts `mode` for a phase: local from its files, a lazy mode through the bench's daemon. */
async function mountMode(c: Ctx, mode: string, phase: Phase): Promise<PhaseMount> {
  const mountpoint = join(c.dir, 'mnt', mode);
  makeDirs(mountpoint);
  if (mode === 'local') {
    return timedMount(async () => {
      const lm: LocalMount = await mountLocal(c.copy, mountpoint, c.features);
      return { mountpoint, unmount: () => lm.unmount(), figures: () => Promise.resolve([0, 0, 0]) };
    });
  }
  const m = await timedMount(async () => {
    await c.daemon.mount(c.opts.image, mountpoint, mode as MountModeRequest, c.opts.access);
    return {
      mountpoint,
      unmount: () => c.daemon.umount(mountpoint),
      figures: async (): Promise<[number, number, number]> => {
        const s = await c.daemon.mountStatus(mountpoint);
        return [s.bytesFetched, s.requests, cpuMs(await c.daemon.workerPid())];
      },
    };
  });
  await c.opts.hooks?.mounted?.(mode, mountpoint, phase);
  return m;
}

/** Fills the daemon's cache with the whole image: a mount with prefetch, until it is done. */
async function completeCache(c: Ctx, mode: string): Promise<void> {
  const mountpoint = join(c.dir, 'mnt', `${mode}-prefetch`);
  makeDirs(mountpoint);
  await c.daemon.mount(c.opts.image, mountpoint, mode as MountModeRequest, c.opts.access, true);
  try {
    await c.daemon.waitPrefetched(mountpoint);
  } finally {
    await c.daemon.umount(mountpoint);
  }
}

/** The three phases of one mode and workload in one run; their samples in phase order. */
async function measureMode(c: Ctx, mode: string, workload: Workload, run: number, record: (phase: Phase, s: BenchSample, m: PhaseMount) => Promise<void>, where: { phase: Phase | 'prepare' }): Promise<void> {
  const lazy = mode !== 'local';
  const localFiles = [c.copy.bootstrap, ...c.copy.blobs];
  // cold
  where.phase = 'cold';
  if (lazy) {
    await c.daemon.stop();
    await c.daemon.start(true);
  } else {
    evictUnder([], localFiles);
  }
  let m = await mountMode(c, mode, 'cold');
  try {
    await record('cold', await measure(c, workload, run, 'cold', m, m.mountMs), m);
  } finally {
    await m.unmount();
  }
  // warm, hot
  where.phase = 'warm';
  if (lazy) {
    await completeCache(c, mode);
    evictUnder([c.daemon.cacheDir]);
  } else {
    evictUnder([], localFiles);
  }
  m = await mountMode(c, mode, 'warm');
  try {
    await record('warm', await measure(c, workload, run, 'warm', m, m.mountMs), m);
    where.phase = 'hot';
    await record('hot', await measure(c, workload, run, 'hot', m, null), m);
  } finally {
    await m.unmount();
  }
}

function hostFacts(features: Features, detected: ReturnType<typeof detect>): BenchReport['host'] {
  return {
    kernel: release(),
    hostname: hostname(),
    cpus: cpus().length,
    memoryBytes: totalmem(),
    node: process.version,
    ondemand: VERSION,
    detect: {
      mode: detected.mode,
      reason: detected.reason,
      features: Object.fromEntries(Object.entries(features).map(([k, v]) => [k, { supported: v.supported, reason: v.reason }])),
    },
  };
}

/** Builds the cells (mode × workload × phase) from the samples, with the ratios to local. */
export function buildCells(modes: string[], workloads: Workload[], samples: Map<string, BenchSample[]>): BenchCell[] {
  const key = (mode: string, w: Workload, p: Phase): string => `${mode}\u0000${w}\u0000${p}`;
  const cells: BenchCell[] = [];
  for (const w of workloads) {
    for (const p of PHASES) {
      for (const mode of modes) {
        const list = samples.get(key(mode, w, p)) ?? [];
        const local = samples.get(key('local', w, p)) ?? [];
        const ratios = list.flatMap((s) => {
          const l = local.find((x) => x.run === s.run);
          return l && s.wallMs > 0 ? [l.wallMs / s.wallMs] : [];
        });
        cells.push({
          mode, workload: w, phase: p, unit: UNITS[w], samples: list,
          median: list.length === 0 ? null : {
            value: median(list.map((s) => s.value)),
            wallMs: median(list.map((s) => s.wallMs)),
            p50Us: medianOrNull(list.map((s) => s.p50Us)),
            p99Us: medianOrNull(list.map((s) => s.p99Us)),
            mountMs: medianOrNull(list.map((s) => s.mountMs)),
            fetchedBytes: median(list.map((s) => s.fetchedBytes)),
            fetchedRequests: median(list.map((s) => s.fetchedRequests)),
            daemonCpuMs: median(list.map((s) => s.daemonCpuMs)),
          },
          vsLocal: mode === 'local' || ratios.length === 0 ? null : median(ratios),
        });
      }
    }
  }
  return cells;
}

function comparePullFigures(source: string, pulls: PullSample[], lazyModes: string[], samples: Map<string, BenchSample[]>, storedBytes: number, error?: string): ComparePull {
  const pullMedian: PullSample | null = pulls.length === 0 ? null : {
    run: 0,
    copyMs: median(pulls.map((p) => p.copyMs)),
    unpackMs: median(pulls.map((p) => p.unpackMs)),
    runMs: median(pulls.map((p) => p.runMs)),
    totalMs: median(pulls.map((p) => p.totalMs)),
  };
  return {
    source,
    samples: pulls,
    median: pullMedian,
    modes: lazyModes.map((mode) => {
      const cold = samples.get(`${mode}\u0000startup\u0000cold`) ?? [];
      const lazy = cold.map((s) => ({ run: s.run, ms: (s.mountMs ?? 0) + s.wallMs }));
      const ratios = lazy.flatMap((l) => {
        const p = pulls.find((x) => x.run === l.run);
        return p ? [l.ms / p.totalMs] : [];
      });
      const fetched = cold.length === 0 ? null : median(cold.map((s) => s.fetchedBytes));
      return {
        mode,
        lazyMs: lazy.length === 0 ? null : median(lazy.map((l) => l.ms)),
        ratio: ratios.length === 0 ? null : median(ratios),
        fetchedBytes: fetched,
        fetchedFraction: fetched === null || storedBytes === 0 ? null : fetched / storedBytes,
      };
    }),
    ...(error !== undefined ? { error } : {}),
  };
}

/** Runs the bench; always leaves no mount behind (those it had to detach are in `leftoverMounts`). */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const opts = { ...options, runs: options.runs, randReads: options.randReads ?? 0 };
  if (!(opts.runs >= 1)) throw new UsageError('--runs must be at least 1');
  if (opts.randReads <= 0) opts.randReads = DEFAULT_RAND_READS;
  const workloads = options.workloads ?? defaultWorkloads(options.run !== undefined);
  if (workloads.includes('startup') && !options.run) throw new UsageError('the startup workload needs --run CMD');
  if (options.comparePull !== undefined && !options.run) throw new UsageError('--compare-pull needs --run CMD (the start-up it compares)');
  const say = options.progress ?? ((): void => undefined);
  const startedAt = new Date().toISOString();
  makeDirs(options.workDir ?? '/var/tmp');
  const dir = mkdtempSync(join(options.workDir ?? '/var/tmp', 'ondemand-bench-'));
  const daemon = new BenchDaemon(join(dir, 'run'), join(dir, 'cache'), options.config);
  const leftoverMounts: string[] = [];
  const cleanUp = async (): Promise<void> => {
    await daemon.stop().catch((err: unknown) => log.warn({ err: errorText(err) }, 'bench: stopping its daemon failed'));
    for (const mp of mountsUnder(dir)) {
      leftoverMounts.push(mp);
      if (umount2(mp, MNT_DETACH) !== 0) log.warn({ mountpoint: mp }, 'bench: could not detach a leftover mount');
    }
    if (leftoverMounts.length > 0) say(`bench: detached ${leftoverMounts.length} mount(s) left behind: ${leftoverMounts.join(', ')}`);
    rmSync(dir, { recursive: true, force: true });
  };
  // Interrupted (Ctrl-C, kill): the same clean-up, then the exit the signal asked for.
  const onSignal = (signal: NodeJS.Signals): void => {
    say(`bench: ${signal}: stopping its daemon and unmounting`);
    void cleanUp().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    makeDirs(daemon.cacheDir);
    const detected = detect(daemon.cacheDir);
    const features = detected.features;
    const lazyModes = chooseBenchModes(options.modes, features, (m, f) => modeUsable(m, f).ok);
    const modes = ['local', ...lazyModes];
    say(`bench: ${options.image}; modes ${modes.join(', ')}; workloads ${workloads.join(', ')}; ${opts.runs} run(s); in ${dir}`);

    say('bench: the local baseline (the whole image fetched, verified and copied)');
    const copy = await makeLocalCopy(options.image, options.access, join(dir, 'local'));
    makeDirs(join(dir, 'lists'));
    const listMnt = join(dir, 'mnt', 'list');
    makeDirs(listMnt);
    const lm = await mountLocal(copy, listMnt, features);
    let lists: TreeLists;
    try {
      lists = listTree(listMnt, join(dir, 'lists'), options.largestFiles ?? LARGEST_FILES);
    } finally {
      await lm.unmount();
    }
    if (lists.largest.length === 0 && workloads.some((w) => w === 'seq' || w === 'rand1' || w === 'rand4')) {
      throw new UsageError(`${options.image} has no file of 4 KiB or more: nothing for the seq and rand workloads (leave them out with --workload)`);
    }
    say(`bench: ${lists.counts.files} files (${(lists.counts.fileBytes / MiB).toFixed(1)} MiB), ${lists.counts.directories} directories; seq/rand read the ${lists.largest.length} largest (${(lists.largestBytes / MiB).toFixed(1)} MiB)${seqRandReader() === 'c' ? '' : '; seq/rand read by Node: no dist/native/bench-reader (make build)'}`);

    const c: Ctx = { opts, features, dir, daemon, copy, lists, say };
    const samples = new Map<string, BenchSample[]>();
    const outcomes = new Map<string, ModeOutcome>(modes.map((m) => [m, { mode: m, status: 'ok' }]));
    const pulls: PullSample[] = [];
    let pullError: string | undefined;

    for (let run = 1; run <= opts.runs; run++) {
      const order = modes.map((_, i) => modes[(i + run - 1) % modes.length]!);
      for (const workload of workloads) {
        for (const mode of order) {
          if (outcomes.get(mode)!.status === 'failed') continue;
          const where: { phase: Phase | 'prepare' } = { phase: 'prepare' };
          try {
            await measureMode(c, mode, workload, run, async (phase, s, m) => {
              const k = `${mode}\u0000${workload}\u0000${phase}`;
              samples.set(k, [...(samples.get(k) ?? []), s]);
              const unit = UNITS[workload];
              const fetched = mode === 'local' ? '' : `; fetched ${(s.fetchedBytes / MiB).toFixed(1)} MiB in ${s.fetchedRequests} requests, daemon CPU ${s.daemonCpuMs.toFixed(0)} ms`;
              say(`run ${run}/${opts.runs} ${workload} ${mode} ${phase}: ${s.value.toFixed(unit === 's' ? 3 : 0)} ${unit} (${s.wallMs.toFixed(1)} ms${s.mountMs !== null ? `, mount ${s.mountMs.toFixed(0)} ms` : ''}${fetched})`);
              await options.hooks?.afterMeasure?.({
                mode, workload, phase, run, mountpoint: m.mountpoint, largest: lists.largest.map((p) => join(m.mountpoint, p)), sample: s,
                evict: () => { evictUnder(mode === 'local' ? [] : [daemon.cacheDir], mode === 'local' ? [copy.bootstrap, ...copy.blobs] : []); },
              });
            }, where);
          } catch (err) {
            const error = errorText(err);
            const phase = where.phase;
            outcomes.set(mode, { mode, status: 'failed', error, failedAt: { workload, phase, run } });
            say(`run ${run}/${opts.runs} ${workload} ${mode} ${phase}: FAILED: ${error}`);
            log.info({ mode, workload, phase, run, err: error }, 'bench: a mode failed; the others go on');
            // Whatever it left: the daemon unmounts everything it serves when it stops; the local mount is
            // detached below at the end if its own unmount failed.
            if (mode !== 'local') await daemon.stop().catch(() => undefined);
            for (const mp of mountsUnder(join(dir, 'mnt', mode))) umount2(mp, MNT_DETACH);
          }
        }
        if (workload === 'startup' && options.comparePull !== undefined && pullError === undefined) {
          try {
            const p = await pullAndStart(options.comparePull, options.access.insecure, join(dir, 'pull'), options.run!, run);
            pulls.push(p);
            say(`run ${run}/${opts.runs} startup full pull: ${(p.totalMs / 1000).toFixed(3)} s (copy ${(p.copyMs / 1000).toFixed(3)}, unpack ${(p.unpackMs / 1000).toFixed(3)}, run ${(p.runMs / 1000).toFixed(3)})`);
          } catch (err) {
            pullError = errorText(err);
            say(`run ${run}/${opts.runs} startup full pull: FAILED: ${pullError}`);
          }
        }
      }
    }
    await daemon.stop();
    const results = buildCells(modes, workloads, samples);
    return {
      schema: BENCH_SCHEMA,
      startedAt,
      finishedAt: new Date().toISOString(),
      host: hostFacts(features, detected),
      image: {
        ref: options.image,
        manifestDigest: copy.manifestDigest,
        storedBytes: copy.storedBytes,
        uncompressedBytes: copy.uncompressedBytes,
        bootstrapBytes: copy.bootstrapBytes,
        blobs: copy.blobs.length,
        files: lists.counts.files,
        directories: lists.counts.directories,
        fileBytes: lists.counts.fileBytes,
        largestFiles: lists.largest,
        largestBytes: lists.largestBytes,
      },
      options: {
        runs: opts.runs,
        modes: lazyModes,
        workloads,
        run: options.run ? { command: options.run.command, ready: options.run.ready?.source ?? null, timeoutMs: options.run.timeoutMs } : null,
        randReads: opts.randReads,
        largestFiles: options.largestFiles ?? LARGEST_FILES,
      },
      modes: modes.map((m) => outcomes.get(m)!),
      results,
      comparePull: options.comparePull === undefined ? null : comparePullFigures(options.comparePull, pulls, lazyModes, samples, copy.storedBytes, pullError),
      leftoverMounts,
    };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanUp();
  }
}
