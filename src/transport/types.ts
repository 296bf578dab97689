/**
 * The seam between orchestration and the transports: what a transport gets to mount an image and what
 * it gives back. Orchestration never knows how a transport talks to the kernel.
 */
import type { CachedBlob } from '../cache/types.js';
import type { Features } from './kernel-features.js';
import type { KernelBroker, KernelObject } from './kernel-broker.js';

/** The ways an image can be served; `auto` (a request, not a mode) picks one of them. */
export const MOUNT_MODES = ['fscache', 'fanotify', 'fuse-blobs', 'fuse-tree'] as const;
export type MountMode = (typeof MOUNT_MODES)[number];

export interface TransportContext {
  /** Mount id: unique per mount, used for private paths (FUSE dir, fsid). */
  id: string;
  mountpoint: string;
  image: string;
  /** The verified uncompressed erofs bootstrap in the cache. */
  bootstrapPath: string;
  /** Pinned, in device-table order (erofs device i+1). */
  blobs: CachedBlob[];
  kernel: KernelBroker;
  features: Features;
  /** Directory for this mount's private FUSE mount (made by the transport through `kernel`). */
  privateDir: string;
  /** The mount will prefetch every blob (a transport may prepare to hand complete blobs to the kernel). */
  prefetch: boolean;
  /** Device nodes in the image work (an image is untrusted: mounts are nodev unless the user says so). */
  allowDevices: boolean;
  /**
   * Tests and benchmarks only: threads and splice threshold of a FUSE transport's reader (see
   * FuseSessionOptions). The daemon never sets it, so the session's defaults are what users run.
   */
  fuseReader?: { copyThreads?: number; spliceMinBytes?: number; threadMetadata?: boolean };
}

export interface TransportStats {
  requests?: number;
  passthroughOpens?: number;
  blobsDirect?: number;
}

export interface ActiveTransport {
  stats(): TransportStats;
  /** Every blob is complete now (prefetch finished): let the kernel read the cache files directly. */
  blobsComplete?(): Promise<void>;
  /** Called after the kernel objects are unmade: stop serving, release fds. */
  stop(): Promise<void>;
}

export interface Transport {
  readonly mode: MountMode;
  /** Starts what its mounts will need (threads) ahead of the first one, off its clock. */
  prepare?(): void;
  /** Makes the mount at ctx.mountpoint; every kernel object goes through ctx.kernel (undo steps included). */
  mount(ctx: TransportContext): Promise<ActiveTransport>;
  /** Serves an existing mount again after a worker restart, from the kernel objects recorded for it. */
  reattach?(ctx: TransportContext, objects: readonly KernelObject[]): Promise<ActiveTransport>;
  /** Every recorded mount has been re-attached (or torn down): start serving what reattach held back. */
  reattachDone?(): void;
  /** The process is about to exit (its mounts are gone): stop what it runs process-wide (threads would keep it alive). */
  shutdown?(): Promise<void>;
}
