/**
 * `ondemand bench`: what it measures and the JSON document it writes (`--json`). The document's shape
 * is the stable schema of docs/bench.md: fields are only ever added (a removal or a change of meaning
 * bumps BENCH_SCHEMA).
 */

export const BENCH_SCHEMA = 'ondemand-bench/1';

/**
 * The workloads, in the order they run and are shown:
 * - startup: `--run CMD` in a chroot of the mount (an overlay over it, /proc and /dev), until it exits or prints `--ready`;
 * - seq: read(2) of the largest files, 1 MiB at a time;
 * - rand1, rand4: 4 KiB preads at random pages of those files, by 1 and by 4 processes;
 * - stat: lstat of every entry; readdir: every entry of every directory;
 * - tree: every regular file read whole.
 */
export const WORKLOADS = ['startup', 'seq', 'rand1', 'rand4', 'stat', 'readdir', 'tree'] as const;
export type Workload = (typeof WORKLOADS)[number];

/**
 * cold: a new mount over an empty ondemand cache (nothing of the image present: bootstrap, metadata
 * and data are fetched; `local`: its files' page cache dropped); warm: a new mount over the complete
 * cache, every cache file's page cache dropped (reads come from the local disk); hot: the warm mount
 * again right after, its page cache as the warm run left it.
 */
export const PHASES = ['cold', 'warm', 'hot'] as const;
export type Phase = (typeof PHASES)[number];

/** The unit of a workload's headline figure. Every unit but `s` is a rate (more is better). */
export const UNITS: Record<Workload, 'MiB/s' | 'IOPS' | 'files/s' | 'entries/s' | 's'> = {
  startup: 's',
  seq: 'MiB/s',
  rand1: 'IOPS',
  rand4: 'IOPS',
  stat: 'files/s',
  readdir: 'entries/s',
  tree: 'MiB/s',
};

export const WORKLOAD_TITLES: Record<Workload, string> = {
  startup: 'start-up (--run)',
  seq: 'sequential read of the largest files',
  rand1: '4 KiB random reads, 1 job',
  rand4: '4 KiB random reads, 4 jobs',
  stat: 'stat of every entry',
  readdir: 'readdir of every directory',
  tree: 'whole-tree read',
};

/** What the reading processes measured: the work and its time, without their start-up. */
export interface Measured {
  wallMs: number;
  ops: number;
  bytes: number;
  /** Per-operation latency percentiles (µs), where the workload does many operations. */
  p50Us: number | null;
  p99Us: number | null;
}

/** One measurement: a mode, a workload, a phase, a run. */
export interface BenchSample extends Measured {
  /** 1-based run number. */
  run: number;
  /** The headline figure in the workload's unit (UNITS). */
  value: number;
  /** Time to make the mount this phase used (cold, warm; null for hot, which reuses warm's). */
  mountMs: number | null;
  /** Bytes and range requests the daemon fetched from the image's source during the workload (0 for local). */
  fetchedBytes: number;
  fetchedRequests: number;
  /** CPU time (user + system) of the daemon's worker during the workload (0 for local). */
  daemonCpuMs: number;
  /** Start-up only: why the run ended. */
  ended?: 'exit' | 'ready';
  exitCode?: number | null;
}

/** The figures of one mode × workload × phase over the runs: medians, and the ratio to local. */
export interface BenchCell {
  mode: string;
  workload: Workload;
  phase: Phase;
  unit: (typeof UNITS)[Workload];
  samples: BenchSample[];
  /** Medians over the samples (null when there are none). */
  median: {
    value: number;
    wallMs: number;
    p50Us: number | null;
    p99Us: number | null;
    mountMs: number | null;
    fetchedBytes: number;
    fetchedRequests: number;
    daemonCpuMs: number;
  } | null;
  /**
   * Speed relative to `local` in the same phase: local's wall time / this mode's wall time for the same
   * work, per run, median over runs (1.0 = as fast as local; 0.5 = takes twice as long). For rate
   * units it is this mode's rate / local's. null for local itself or when either side has no sample.
   */
  vsLocal: number | null;
}

export type ModeStatus = 'ok' | 'failed';

export interface ModeOutcome {
  mode: string;
  status: ModeStatus;
  /** Why it failed: the error of the first step that did (mount, workload, unmount), with where. */
  error?: string;
  /** Where the failure happened: workload, phase and run. */
  failedAt?: { workload: Workload; phase: Phase | 'prepare'; run: number };
}

export interface HostFacts {
  kernel: string;
  hostname: string;
  cpus: number;
  memoryBytes: number;
  node: string;
  ondemand: string;
  /** `ondemand detect` for the bench's cache dir: the mode auto picks, why, and every feature. */
  detect: { mode: string | null; reason: string; features: Record<string, { supported: boolean; reason: string }> };
}

export interface ImageFacts {
  ref: string;
  manifestDigest: string;
  /** Bytes of the image's blobs as stored (what a full download moves) and uncompressed. */
  storedBytes: number;
  uncompressedBytes: number;
  bootstrapBytes: number;
  blobs: number;
  files: number;
  directories: number;
  /** Bytes of regular files in the tree. */
  fileBytes: number;
  /** The files the seq and rand workloads read (the largest), and their bytes. */
  largestFiles: string[];
  largestBytes: number;
}

/** `--compare-pull`: the full pull of the unconverted image, then the same start-up command. */
export interface PullSample {
  run: number;
  copyMs: number;
  unpackMs: number;
  runMs: number;
  totalMs: number;
}
export interface ComparePull {
  source: string;
  samples: PullSample[];
  median: PullSample | null;
  /** Per mode: cold start-up (mount + run) against the pull's total, and what it fetched. */
  modes: {
    mode: string;
    /** Median of mount + run of the cold start-up runs. */
    lazyMs: number | null;
    /** lazyMs / the pull's total (median of per-run ratios): 0.2 = a fifth of the pull's time. */
    ratio: number | null;
    fetchedBytes: number | null;
    /** fetchedBytes / the image's stored bytes. */
    fetchedFraction: number | null;
  }[];
  error?: string;
}

export interface BenchOptionsJson {
  runs: number;
  modes: string[];
  workloads: Workload[];
  run: { command: string; ready: string | null; timeoutMs: number } | null;
  randReads: number;
  /** How many of the largest files seq and rand read (at most; and at most 1 GiB of them). */
  largestFiles: number;
}

export interface BenchReport {
  schema: typeof BENCH_SCHEMA;
  startedAt: string;
  finishedAt: string;
  host: HostFacts;
  image: ImageFacts;
  options: BenchOptionsJson;
  /** Every mode measured, `local` first, and whether it completed. */
  modes: ModeOutcome[];
  results: BenchCell[];
  comparePull: ComparePull | null;
  /** Mounts that were still there after the bench and had to be detached (should be empty). */
  leftoverMounts: string[];
}
