/** What a cached blob needs from the cache that owns it: its tuning, fetch slots, clock and space. */
import type { CacheClock } from './clock.js';
import type { HashMode } from '../format/image/frames.js';
import type { FetchSlots, Throttle } from './scheduler.js';

export interface BlobTuning {
  /** Cap on the stored bytes of one merged range request. */
  maxMergeBytes: number;
  /** Most frames a sequential read keeps fetching ahead of itself (fetch-plan.ts: planRead). */
  readAheadFrames: number;
  /** Cap on the stored bytes of one read-ahead request (smaller than maxMergeBytes: they run side by side). */
  readAheadJobBytes: number;
  hash: HashMode;
  prefetchConcurrency: number;
  /** Default prefetch bandwidth cap (bytes/s); 0 = none. */
  prefetchBytesPerSecond: number;
  /**
   * When to re-verify the set bits of a map that looks valid: 'unclean' (its last owner crashed or was
   * killed) or 'always'. An invalid map (header, size, checksum) is always rebuilt by re-verification.
   */
  verifyOnOpen: 'unclean' | 'always';
}

/** What a blob needs from the cache that owns it. */
export interface BlobHost {
  readonly dir: string;
  readonly slots: FetchSlots;
  readonly tuning: BlobTuning;
  readonly clock: CacheClock;
  /**
   * Called before writing `bytes` new bytes: may evict other blobs to stay under the size limit.
   * The bytes count as used until `release(bytes)`, called once they are in allocatedBytes (or failed).
   */
  reserve(bytes: number): Promise<void>;
  release(bytes: number): void;
  /** Shared default prefetch throttle (undefined when uncapped). */
  readonly prefetchThrottle: Throttle | undefined;
  /**
   * Watches the data file open as `fd` for changes by other processes (tamper-watch.ts) until the
   * returned function runs; absent where nothing can watch.
   */
  watchDataFile?(fd: number, changed: (pid: number) => void): () => void;
}
