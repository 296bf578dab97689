/**
 * The seam between orchestration and the transports: what a transport gets to mount an image, what
 * it gives back, and which transports exist. Orchestration never knows how a transport talks to the kernel.
 */
import type { CachedBlob } from '../cache/types.js';
import type { MountMode, MountRecord } from '../daemon/protocol.js';
import type { Features } from './detect.js';
import type { KernelBroker } from './kernel-broker.js';
import { fuseBlobsTransport } from './transport-fuse-blobs.js';
import { fscacheTransport } from './transport-fscache.js';

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
  /** Directory under the run dir for this mount's private FUSE mount. */
  privateDir: string;
  /** The mount will prefetch every blob (a transport may prepare to hand complete blobs to the kernel). */
  prefetch: boolean;
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
  /** Makes the mount at ctx.mountpoint; every kernel object goes through ctx.kernel (undo steps included). */
  mount(ctx: TransportContext): Promise<ActiveTransport>;
  /** Serves an existing mount again after a worker restart, from the supervisor's record. */
  reattach?(ctx: TransportContext, record: MountRecord): Promise<ActiveTransport>;
  /** Every recorded mount has been re-attached (or torn down): start serving what reattach held back. */
  reattachDone?(): void;
}

const transports: Transport[] = [fscacheTransport, fuseBlobsTransport].filter((t): t is Transport => t !== null);

export function transportFor(mode: MountMode): Transport | undefined {
  return transports.find((t) => t.mode === mode);
}

/** Tells every transport that re-attaching after a worker restart is over. */
export function reattachDone(): void {
  for (const t of transports) t.reattachDone?.();
}

export function implementedModes(): MountMode[] {
  return transports.map((t) => t.mode);
}
