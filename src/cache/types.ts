/**
 * The one cache backend every transport uses (FUSE blobs, cachefiles, fanotify, FUSE tree).
 * Per blob: a sparse data file holding the uncompressed view, and a presence map of verified frames.
 * Transports call this; it calls the fetcher; nothing calls back up.
 */
import type { BlobDescriptor, BlobToc } from '../format/image/types.js';
import type { BlobFetcher, ByteRange } from '../fetch/types.js';
import type { MsHistogram } from '../util/histogram.js';
import type { PresenceView } from './presence-view.js';

/** Wait times of reads that had to wait for frames: counts[i] waited ≤ boundsMs[i]; the last count is the rest. */
/** How long reads waited for fetches (buckets in ms; stats.ts WAIT_BUCKETS_MS). */
export type WaitHistogram = MsHistogram;

export interface BlobStats {
  hits: number;
  misses: number;
  bytesFetched: number;
  requestsFetched: number;
  mergedRequests: number;
  framesPresent: number;
  framesTotal: number;
  /** Frames whose fetched bytes failed verification (never stored). */
  integrityErrors?: number;
  /** Range requests that failed. */
  fetchErrors?: number;
  /** read()/ensure() calls that failed: a transport answered the kernel with an error (logged at warn). */
  failedReads?: number;
  /** Of bytesFetched and requestsFetched: what background prefetch fetched (reads and their read-ahead: the rest). */
  prefetchBytesFetched?: number;
  prefetchRequestsFetched?: number;
  waitHistogram?: WaitHistogram;
  /** Times another process modified the data file while this process had it open (all frames re-verified). */
  changedBehind?: number;
}

export interface PrefetchOptions {
  signal?: AbortSignal;
  /** Ranges of the uncompressed view to fetch first, in priority order; without it, the whole blob. */
  ranges?: ByteRange[];
  /** Bandwidth cap for this prefetch in bytes/s (default: the cache's `prefetchBytesPerSecond`). */
  bytesPerSecond?: number;
  /**
   * A bandwidth budget shared with other prefetches (one mount's blobs and steps: `bandwidthBudget()`);
   * wins over bytesPerSecond.
   */
  budget?: BandwidthBudget;
  /** With `ranges`: stop after them instead of going on with the rest of the blob. */
  rangesOnly?: boolean;
}

export interface CachedBlob {
  readonly blobId: string;
  /** Size of the uncompressed view (the data file's size). */
  readonly size: number;
  /** Path of the sparse data file; a byte there is valid only where its frame is present. */
  readonly dataPath: string;
  /**
   * For whoever opens the data file while the blob is pinned or leased (passthrough, loop, threads):
   * a path naming the very file the cache has open, even if `dataPath` was replaced behind its back.
   */
  readonly openDataPath?: string;
  /**
   * `listener` runs when another process changed the data file while it is open: its frames are then
   * verified again, and a transport that let the kernel read the file directly must stop that.
   */
  onChangedBehind?(listener: () => void): () => void;
  readonly toc: BlobToc;
  /** Bytes [offset, offset+length) of the uncompressed view, fetching missing frames. Clamped at the end. */
  read(offset: number, length: number): Promise<Buffer>;
  /** Makes the range present in the data file (for transports where the kernel reads the file itself). */
  /**
   * `durable: false`: resolves as soon as the range's verified bytes are written to the data file, before
   * the fdatasync that makes them present (for a kernel reading the file now; a crash loses only the bits).
   */
  ensure(offset: number, length: number, options?: { durable?: boolean }): Promise<void>;
  /**
   * True when every frame is present (false while an eviction runs): the data file may then be read
   * directly (passthrough, loop) by whoever holds a lease taken before this check (leaseIfComplete).
   */
  isComplete(): boolean;
  /** Fetches every missing frame in the background order; on-demand reads overtake it. */
  prefetch(options?: PrefetchOptions): Promise<void>;
  stats(): BlobStats;
  /**
   * Marks the blob in use by a mount (never evicted while pinned). Returns the unpin function. With a
   * fetcher (the one the mount opened the blob with), that fetcher serves the blob's fetches while the
   * pin lasts, so a mount that goes away (and closes its fetcher) never takes another's source with it.
   */
  pin(fetcher?: BlobFetcher): () => void;
  /**
   * Makes the blob non-evictable until the returned function is called: taken by whoever reads
   * `dataPath` itself or hands it to the kernel. An eviction already running is not stopped: after
   * taking it, check isComplete() or await ensure() before reading the file.
   */
  lease?(): () => void;
  /** A lease if the blob is complete now (it then stays complete until released); else undefined. */
  leaseIfComplete?(): (() => void) | undefined;
  /** Path of the presence map file. */
  readonly mapPath?: string;
  /** True when frame `index` is present (written, durable, verified). */
  hasFrame?(index: number): boolean;
  /**
   * Resolves when no fetch of this blob is in flight. `read` returns as soon as bytes are verified;
   * their frames become present (durable) a moment later — this waits for that.
   */
  idle?(): Promise<void>;
  /**
   * A read-only view of the presence bits on shared memory, so another thread may pread present
   * frames from `dataPath` itself (protocol in presence-view.ts); such reads count as hits.
   */
  presenceView?(): PresenceView;
  /**
   * Another thread served a read of [offset, offset+length) through the presence view: its use is
   * noted, and a sequential read it continues keeps its read-ahead going (no fetch waits on this).
   */
  readElsewhere?(offset: number, length: number): void;
}

export interface OpenBlobOptions {
  /** Where this blob's stored bytes come from. */
  fetcher: BlobFetcher;
  /** The blob's verified table of contents (see loadToc in src/format/image/toc-fetch.ts). */
  toc: BlobToc;
  /** For logs and errors. */
  image?: string;
}

/** What the metadata store keeps by digest: manifests (and indexes) and blobs' TOCs. */
export type MetadataKind = 'manifest' | 'toc';

/** The last time a tag reference was resolved against its registry. */
export interface TagResolution {
  /** `host/repo:tag`. */
  reference: string;
  /** `sha256:<hex>` of the manifest (or index) the tag named. */
  digest: string;
  /** ISO time of that resolution. */
  resolvedAt: string;
}

/**
 * Image metadata kept with the blobs (manifests, TOCs, tag resolutions), so an image mounted once
 * mounts again without its registry. Content is addressed by digest and verified on write and read.
 */
export interface MetadataStore {
  /** Verified bytes stored under `digest` (`sha256:<hex>`), or undefined. */
  get(kind: MetadataKind, digest: string): Promise<Buffer | undefined>;
  /** Stores `bytes` under `digest`; an IntegrityError when they do not hash to it. */
  put(kind: MetadataKind, digest: string, bytes: Buffer): Promise<void>;
  /** The last resolution of a tag reference, if any. */
  tag(reference: string): Promise<TagResolution | undefined>;
  /** Records that `reference` named `digest` just now. */
  setTag(reference: string, digest: string): Promise<void>;
  /** The start-up trace recorded for the image with manifest `digest` (opaque JSON), if any. */
  trace?(digest: string): Promise<Buffer | undefined>;
  setTrace?(digest: string, bytes: Buffer): Promise<void>;
}

export interface CacheBackend {
  readonly dir: string;
  /** Manifests, TOCs and tag resolutions kept with the blobs (absent: nothing is kept). */
  readonly metadata?: MetadataStore;
  /** Opens (creating if new) the cache entry for a blob, loading and checking its presence map. */
  openBlob(descriptor: BlobDescriptor, options: OpenBlobOptions): Promise<CachedBlob>;
  /** Path of a locally stored bootstrap (uncompressed), fetched whole and verified on first use. */
  bootstrapPath(digest: string, fetch: () => Promise<Buffer>): Promise<string>;
  stats(): BlobStats;
  close(): Promise<void>;
  /** Evicts least recently used, unpinned blobs until the cache uses at most `maxSize` bytes (default: its limit). */
  gc?(options?: { maxSize?: number }): Promise<GcResult>;
  /** Bytes the cache directory uses (allocated blocks of data, maps, bootstraps and metadata). */
  usage?(): number;
  /** The size limit (undefined: none). */
  readonly maxSize?: number | undefined;
  /** Blobs evicted since this process opened the cache. */
  readonly evictedBlobs?: number;
}

export interface GcResult {
  evictedBlobs: string[];
  /** Manifests (and indexes) whose metadata went with evicted blobs. */
  droppedManifests?: string[];
  freedBytes: number;
  usageBytes: number;
}

/** Bytes a prefetch may fetch now: waits until they fit the budget's rate (see Throttle). */
export interface BandwidthBudget {
  take(bytes: number, signal?: AbortSignal): Promise<void>;
}
