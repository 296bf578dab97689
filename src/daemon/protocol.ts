/**
 * Every message the daemon speaks, in one place.
 * - Control socket (CLI ↔ worker): JSON lines, one request and one response per line, matched by `id`.
 * - IPC channel (worker ↔ supervisor): Node's fork channel; the supervisor owns kernel objects and fds.
 * - The record file (supervisor → disk): what each mount made, so it can be undone after a crash.
 */

export const MOUNT_MODES = ['auto', 'fscache', 'fuse-blobs', 'fuse-tree', 'fanotify'] as const;
export type MountModeRequest = (typeof MOUNT_MODES)[number];
export type MountMode = Exclude<MountModeRequest, 'auto'>;

// ---- control socket ---------------------------------------------------------------------------

export interface MountRequest {
  op: 'mount';
  image: string;
  mountpoint: string;
  mode: MountModeRequest;
  prefetch: boolean;
  insecure: boolean;
  /** USER:PASS; kept in the worker's memory only, never written to the record file. */
  creds?: string;
  /** Blob files for a plain bootstrap path, in device-table order. */
  blobs?: string[];
}
export interface UmountRequest { op: 'umount'; mountpoint: string }
export interface StatusRequest { op: 'status' }
export interface ShutdownRequest { op: 'shutdown' }
export interface PingRequest { op: 'ping' }
export type ControlRequest = MountRequest | UmountRequest | StatusRequest | ShutdownRequest | PingRequest;

export interface MountResult { mountpoint: string; image: string; mode: MountMode; reason: string }
export interface MountStatus {
  mountpoint: string;
  image: string;
  mode: MountMode;
  /** Network bytes fetched for this mount's blobs since it was made. */
  bytesFetched: number;
  requests: number;
  hits: number;
  misses: number;
  passthroughOpens?: number;
  /** Blobs whose loop device now reads the complete cache file directly (no userspace on reads). */
  blobsDirect?: number;
  prefetch?: 'running' | 'done' | 'failed';
}
export interface CacheStatus {
  dir: string;
  hits: number;
  misses: number;
  bytesFetched: number;
  requestsFetched: number;
}
export interface StatusResult {
  daemon: { pid: number; workerPid: number; workerRestarts: number; cacheDir: string };
  mounts: MountStatus[];
  cache: CacheStatus;
}
export interface PingResult { pid: number; cacheDir: string }

export interface ControlResults {
  mount: MountResult;
  umount: { mountpoint: string };
  status: StatusResult;
  shutdown: { stopping: true };
  ping: PingResult;
}

export interface WireError { code: string; message: string; context?: Record<string, string | number | boolean | undefined> }
export type ControlResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: WireError };
export type ControlEnvelope = ControlRequest & { id: number };

// ---- records: what a mount made ---------------------------------------------------------------

/** One kernel object a mount made. Undone in reverse order of creation. */
export type KernelObject =
  /** A private FUSE mount; `fd` is the supervisor's /dev/fuse fd; `params` what INIT negotiated. */
  | { kind: 'fuse'; path: string; fd: number; params?: unknown }
  | { kind: 'loop'; device: string }
  | { kind: 'mount'; target: string; fstype: string }
  /** A directory the daemon created (the FUSE mount's directory). */
  | { kind: 'dir'; path: string };

export interface MountRecord {
  id: string;
  mountpoint: string;
  image: string;
  mode: MountMode;
  state: 'mounting' | 'mounted';
  /** How to resolve the image again after a worker restart (no secrets). */
  resolve: { insecure: boolean; blobs?: string[]; manifestDigest?: string };
  prefetch: boolean;
  createdAt: string;
  objects: KernelObject[];
}

export interface RecordFile {
  supervisorPid: number;
  cacheDir: string;
  mounts: MountRecord[];
}

// ---- IPC: worker → supervisor -----------------------------------------------------------------

export type SupervisorRequest =
  | { op: 'begin'; record: Omit<MountRecord, 'objects' | 'state'>; creds?: string }
  | { op: 'openFuse'; id: string; path: string; fsname: string; options: string }
  | { op: 'fuseParams'; id: string; path: string; params: unknown }
  | { op: 'attachLoop'; id: string; file: string }
  /** Points a read-only loop device at another file of the same size (a complete blob's cache file). */
  | { op: 'swapLoop'; id: string; device: string; file: string }
  | { op: 'mount'; id: string; source: string; target: string; fstype: string; flags: number; data: string }
  | { op: 'mkdir'; id: string; path: string }
  /** The supervisor's /dev/cachefiles fd, bound `ondemand` on first use and held for its lifetime (one per host). */
  | { op: 'openCachefiles'; id: string }
  | { op: 'unmake'; id: string; object: KernelObject }
  | { op: 'mounted'; id: string; manifestDigest?: string }
  /** Undoes every object of the mount that is left, then forgets it. */
  | { op: 'end'; id: string }
  | { op: 'list' }
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
  mkdir: null;
  /** `fresh`: bound by this request (false: a previous worker served it; adopt with restore). */
  openCachefiles: { fd: number; restoreSupported: boolean; fresh: boolean };
  unmake: null;
  mounted: null;
  end: null;
  list: { mounts: (MountRecord & { creds?: string })[]; cacheDir: string; restarts: number };
  ready: null;
  shutdown: null;
}

export type IpcToSupervisor = { rid: number; req: SupervisorRequest };
export type IpcFromSupervisor =
  | { rid: number; ok: true; result: unknown }
  | { rid: number; ok: false; error: WireError }
  /** Sent with the control socket's server handle when the worker starts. */
  | { hello: { cacheDir: string; restarts: number; supervisorPid: number } };
