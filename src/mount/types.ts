/** What a mount is: the request that makes one, what it reports, and the record of what it made. */
import type { StartupTrace } from '../format/image/trace.js';
import type { FetchFigures } from '../fetch/observed.js';
import type { Credentials } from '../registry/credentials.js';
import type { KernelBroker, KernelObject } from '../transport/kernel-broker.js';
import type { MsHistogram } from '../util/histogram.js';
import type { UndoStack } from '../util/undo-stack.js';
import type { MountMode } from '../transport/types.js';

/**
 * A registry that stops answering fails the reads waiting on it after this long (EIO), instead of
 * holding them for the registry client's own 10-minute operation deadline.
 */
export const DEFAULT_FETCH_DEADLINE_MS = 30_000;

export const MOUNT_MODE_REQUESTS = ['auto', 'fscache', 'fuse-blobs', 'fuse-tree', 'fanotify'] as const;
export type MountModeRequest = (typeof MOUNT_MODE_REQUESTS)[number];

export interface MountRequest {
  op: 'mount';
  image: string;
  mountpoint: string;
  mode: MountModeRequest;
  prefetch: boolean;
  insecure: boolean;
  /**
   * The caller's registry credentials, resolved on the caller's side (CLI flags, its environment, its
   * Docker config); absent or null: anonymous. The daemon never looks up credentials of its own for a
   * mount. Kept in the worker's and supervisor's memory only, never written to the record file.
   */
  credentials?: Credentials | null;
  /** Blob files for a plain bootstrap path, in device-table order. */
  blobs?: string[];
  /** `os/arch[/variant]` of a multi-platform image (default: the host's). */
  platform?: string;
  /** Let device nodes of the image work (mounts are nodev by default). Not plumbed into the transports yet. */
  allowDevices?: boolean;
  /**
   * Paths or globs inside the image whose data is prefetched first, in this order (`mount
   * --prefetch-paths`); then the rest of the image if `prefetch`.
   */
  prefetchPaths?: string[];
  /** This mount's prefetch bandwidth cap, bytes/s (absent or 0: the daemon's prefetch.rate). */
  prefetchRate?: number;
  /** A start-up trace to fetch first (`mount --prefetch-trace FILE`), instead of the one kept for the image. */
  prefetchTrace?: StartupTrace;
}
export interface UmountResult {
  mountpoint: string;
  /** Set when the mount lives on: who still used it (a lazy unmount), other mount namespaces that mount it (their reads fail from now on). */
  detachedFrom?: string;
}
export interface MountResult {
  mountpoint: string;
  image: string;
  mode: MountMode;
  reason: string;
  /** What the user should know, e.g. the registry was unreachable and a cached tag resolution was used. */
  warnings?: string[];
}
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
  /** Why the prefetch failed (its first error). */
  prefetchError?: string;
  /** Reads that failed (the program got EIO); each is in the daemon's log with image, blob and offset. */
  failedReads: number;
  /** Times another process changed one of the mount's cache data files while served (each time, every frame was verified again). */
  changedBehind?: number;
  /** Of bytesFetched/requests: what background prefetch fetched; the rest was for reads (and their read-ahead). */
  prefetchBytesFetched: number;
  prefetchRequests: number;
  /** Bytes of the mount's blobs (uncompressed views) present in the cache now, and their total. */
  bytesPresent: number;
  bytesTotal: number;
  /** How long reads that missed waited for their frames (buckets in ms). */
  readWait: MsHistogram;
  /** This mount's range requests, timed where they leave the cache. */
  fetch: FetchFigures;
  /** The same counters per blob of the image (device-table order). */
  blobs: BlobStatus[];
}

/** One blob of a mount: counters since the mount was made (frames: now). */
export interface BlobStatus {
  /** The blob's digest (as in the image's manifest). */
  digest: string;
  bytesFetched: number;
  requests: number;
  prefetchBytesFetched: number;
  prefetchRequests: number;
  hits: number;
  misses: number;
  failedReads: number;
  changedBehind?: number;
  framesPresent: number;
  framesTotal: number;
  /** Bytes of the uncompressed view present now (whole frames), and its size. */
  bytesPresent: number;
  bytesTotal: number;
}
export interface MountRecord {
  id: string;
  mountpoint: string;
  image: string;
  mode: MountMode;
  state: 'mounting' | 'mounted';
  /** How to resolve the image again after a worker restart (no secrets). */
  resolve: { insecure: boolean; blobs?: string[]; platform?: string; manifestDigest?: string };
  prefetch: boolean;
  /** The request's prefetch list and rate: a re-attached mount prefetches as the first worker did. */
  prefetchPaths?: string[];
  prefetchRate?: number;
  /** Mounted without nodev (`mount --allow-devices`). */
  allowDevices?: boolean;
  createdAt: string;
  objects: KernelObject[];
}

/**
 * Who keeps each mount's record and makes its kernel objects (the daemon's supervisor), so that a
 * worker that dies leaves nothing behind that cannot be served again or undone.
 */
export interface MountRecordKeeper {
  begin(record: Omit<MountRecord, 'objects' | 'state'>, credentials?: Credentials): Promise<void>;
  /** Every object is made and the mount is usable. */
  mounted(id: string, manifestDigest?: string): Promise<void>;
  /** Undoes every object of the mount that is left, then forgets it. */
  end(id: string): Promise<void>;
  /** The broker that makes mount `id`'s kernel objects, each recorded under it. */
  broker(id: string, undo: UndoStack): KernelBroker;
}
