/**
 * Every message the daemon speaks, in one place.
 * - Control socket (CLI ↔ worker): JSON lines, one request and one response per line, matched by `id`.
 * - IPC channel (worker ↔ supervisor): Node's fork channel; the supervisor owns kernel objects and fds.
 * - The record file (supervisor → disk): what each mount made, so it can be undone after a crash.
 */

import type { BlobVerifyResult } from '../cache/index.js';
import type { GcResult } from '../cache/types.js';
import type { BlobToc } from '../format/image/types.js';
import type { Credentials } from '../registry/credentials.js';
import type { FanotifyGroupHandle, KernelObject } from '../transport/kernel-broker.js';
import type { MountRecord, MountRequest, MountResult, MountStatus, UmountResult } from '../mount/types.js';

// ---- control socket ---------------------------------------------------------------------------

/** `lazy`: detach even while processes use the mount (otherwise a busy mount is refused). */
export interface UmountRequest { op: 'umount'; mountpoint: string; lazy?: boolean }
export interface StatusRequest { op: 'status' }
export interface ShutdownRequest { op: 'shutdown' }
export interface PingRequest { op: 'ping' }
/** Evicts least recently used blobs not in use until the cache uses at most `maxSize` bytes. */
export interface GcRequest { op: 'gc'; maxSize: number }
/**
 * Re-hashes the present frames of the blobs of `tocs` (an image the CLI resolved: a closed blob may
 * have no TOC stored), else of those whose id starts with one of `blobIds`, else of all.
 */
export interface VerifyRequest { op: 'verify'; blobIds?: string[]; tocs?: BlobToc[] }
export type ControlRequest = MountRequest | UmountRequest | StatusRequest | ShutdownRequest | PingRequest | GcRequest | VerifyRequest;

/** The cache as a whole, since the worker opened it (usage: now). */
export interface CacheStatus {
  dir: string;
  hits: number;
  misses: number;
  bytesFetched: number;
  requestsFetched: number;
  /** Of bytesFetched/requestsFetched: background prefetch's share. */
  prefetchBytesFetched: number;
  prefetchRequestsFetched: number;
  failedReads: number;
  /** Bytes the cache directory uses now. */
  usageBytes: number;
  /** cache.max_size (null: no limit). */
  maxSizeBytes: number | null;
  evictedBlobs: number;
}
export interface DaemonStatus {
  pid: number;
  workerPid: number;
  /** How often the supervisor restarted the worker (a crash each). */
  workerRestarts: number;
  cacheDir: string;
  /** The worker's memory (it holds the cache and serves the mounts). */
  memory: { rssBytes: number; heapUsedBytes: number; heapTotalBytes: number; externalBytes: number };
  /** The metrics endpoint's address (null: off). */
  metricsAddress: string | null;
}
export interface StatusResult {
  daemon: DaemonStatus;
  mounts: MountStatus[];
  cache: CacheStatus;
}
export interface PingResult { pid: number; cacheDir: string }

export interface ControlResults {
  mount: MountResult;
  umount: UmountResult;
  status: StatusResult;
  shutdown: { stopping: true };
  ping: PingResult;
  gc: GcResult;
  verify: BlobVerifyResult[];
}

export interface WireError {
  code: string;
  message: string;
  context?: Record<string, string | number | boolean | undefined>;
  errno?: number;
  cause?: WireError;
}
export type ControlResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: WireError };
export type ControlEnvelope = ControlRequest & { id: number };

// ---- records: what a mount made ---------------------------------------------------------------

export interface RecordFile {
  supervisorPid: number;
  cacheDir: string;
  mounts: MountRecord[];
  /** The supervisor's /dev/cachefiles fd, once bound (a successor daemon takes it over: `daemon restart`). */
  cachefiles?: { fd: number; restoreSupported: boolean };
  /** The supervisor's fanotify group fd (a successor daemon takes it over with the mounts: `daemon restart`). */
  fanotify?: { fd: number };
}

// ---- IPC: worker → supervisor -----------------------------------------------------------------

export type SupervisorRequest =
  | { op: 'begin'; record: Omit<MountRecord, 'objects' | 'state'>; credentials?: Credentials }
  | { op: 'openFuse'; id: string; path: string; fsname: string; options: string; flags?: number }
  | { op: 'fuseParams'; id: string; path: string; params: unknown }
  | { op: 'attachLoop'; id: string; file: string }
  /** Points a read-only loop device at another file of the same size (a complete blob's cache file). */
  | { op: 'swapLoop'; id: string; device: string; file: string }
  | { op: 'mount'; id: string; source: string; target: string; fstype: string; flags: number; data: string }
  | { op: 'mkdir'; id: string; path: string }
  /** The supervisor's /dev/cachefiles fd, bound `ondemand` on first use and held for its lifetime (one per host). */
  | { op: 'openCachefiles'; id: string }
  /** The supervisor's fanotify pre-content group (created on first use, kept by a holder process too); `id` may be ''. */
  | { op: 'openFanotify'; id: string }
  /**
   * Marks a blob's data file in that group (before erofs opens it): the file `open` reaches when given
   * (the worker's fd of it, /proc/PID/fd/N), else `path`; recorded by `path`, its name in the cache.
   */
  | { op: 'markFanotify'; id: string; path: string; open?: string }
  | { op: 'unmake'; id: string; object: KernelObject }
  | { op: 'mounted'; id: string; manifestDigest?: string }
  /** Undoes every object of the mount that is left, then forgets it. */
  | { op: 'end'; id: string }
  | { op: 'list' }
  /** The supervisor's fd of the cache dir's lock (it holds the flock for the worker; see adoptCacheLock). */
  | { op: 'cacheLock' }
  /** The worker is listening on the control socket. */
  | { op: 'ready' }
  | { op: 'shutdown' };

export interface SupervisorResults {
  begin: null;
  openFuse: { fd: number; supervisorPid: number };
  fuseParams: null;
  attachLoop: { device: string };
  swapLoop: null;
  mount: null;
  /** `made`: the directory did not exist before (so it is the mount's to remove). */
  mkdir: { made: boolean };
  /** `fresh`: bound by this request (false: a previous worker served it; adopt with restore). */
  openCachefiles: { fd: number; restoreSupported: boolean; fresh: boolean };
  openFanotify: FanotifyGroupHandle;
  markFanotify: null;
  unmake: null;
  mounted: null;
  end: null;
  /** `fanotify`: the supervisor holds a fanotify group (events may be waiting for a worker to answer them). */
  list: { mounts: (MountRecord & { credentials?: Credentials })[]; cacheDir: string; restarts: number; fanotify: boolean };
  cacheLock: { fd: number };
  ready: null;
  shutdown: null;
}

export type IpcToSupervisor = { rid: number; req: SupervisorRequest };
export type IpcFromSupervisor =
  | { rid: number; ok: true; result: unknown }
  | { rid: number; ok: false; error: WireError }
  /** Unmount everything and exit: the daemon is shutting down (a signal to the worker is a crash). */
  | { stop: true }
  /** Sent with the control socket's server handle when the worker starts. */
  | { hello: { cacheDir: string; restarts: number; supervisorPid: number } };
