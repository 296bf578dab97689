/**
 * The cache backend: one per cache directory and process (flock'ed), shared by every transport.
 * `openCache()` prepares the directory, takes the lock and indexes what is on disk; `openBlob()`
 * returns ONE CachedBlob per blob id however many transports ask, so a frame is fetched once.
 * Eviction: when a write would push usage past `maxSize × highWatermark`, least recently used
 * blobs that are neither pinned nor busy are dropped until usage is under `maxSize × lowWatermark`.
 */
import { existsSync, lstatSync, readdirSync, rmSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobDescriptor, BlobToc } from '../format/image/types.js';
import { CacheError, errorText } from '../util/errors.js';
import { log, logFor } from '../util/log.js';
import { CachedBlobEntry } from './blob.js';
import type { BlobHost, BlobTuning } from './blob-host.js';
import { BootstrapStore } from './bootstrap-store.js';
import { systemClock, type CacheClock } from './clock.js';
import { BLOB_FILE_NAME, blobPaths, prepareCacheDir, resolveCacheDir, type BlobPaths, type CacheLayout } from './dir.js';
import { readMapSummary } from './inventory.js';
import { ImageMetadataStore } from './metadata-store.js';
import { acquireCacheLock, adoptCacheLock, type CacheLock } from './lock.js';
import { FetchSlots, Throttle } from './scheduler.js';
import { sumStats } from './stats.js';
import { TamperWatch } from './tamper-watch.js';
import { readStoredToc } from './toc-store.js';
import { verifyBlobFiles, type BlobVerifyResult } from './verify.js';
import type { BlobStats, CacheBackend, CachedBlob, GcResult, OpenBlobOptions } from './types.js';

export interface CacheOptions extends Partial<BlobTuning> {
  /** Cache directory (default: resolveCacheDir(), i.e. $ONDEMAND_CACHE_DIR or /var/cache/ondemand). */
  /**
   * This process's fd of `<dir>/lock` whose flock another process holds for it (the daemon's
   * supervisor): the cache then takes no lock of its own (see adoptCacheLock).
   */
  heldLockFd?: number;
  dir?: string;
  /** Size limit of the directory in bytes; undefined = no eviction. */
  maxSize?: number;
  /** Eviction starts when usage would pass maxSize × this (default 0.95)... */
  highWatermark?: number;
  /** ...and goes on until usage is under maxSize × this (default 0.8). */
  lowWatermark?: number;
  /** Concurrent range requests across all blobs (default 8). */
  maxConcurrentFetches?: number;
  /**
   * A blob nobody has pinned, opened or used for this long is closed (its two fds released; it stays on
   * disk and reopens on demand), so a long-lived daemon's fds do not grow with every image it served.
   * Default 10 s; 0 keeps blobs open until close().
   */
  idleCloseMs?: number;
  /** Time and timers (default: the system's); tests pass one they move themselves. */
  clock?: CacheClock;
  /**
   * Watch open data files for changes by other processes (tamper-watch.ts; default true, where
   * fanotify is allowed). Off, a change is noticed only at the blob's next open.
   */
  watchChanges?: boolean;
}

export const DEFAULT_TUNING: BlobTuning = {
  maxMergeBytes: 4 * 1024 * 1024,
  readAheadFrames: 0,
  readAheadJobBytes: 1024 * 1024,
  hash: 'event-loop',
  prefetchConcurrency: 4,
  prefetchBytesPerSecond: 0,
  verifyOnOpen: 'unclean',
};

/**
 * How long a blob openBlob returned stays non-evictable waiting for its opener's first pin, lease or use
 * (mounts pin in the same tick; this only bounds an opener that never comes back).
 */
export const OPEN_HOLD_MS = 10_000;

/** A blob on disk that no CachedBlob of this process has open. */
interface DiskEntry {
  bytes: number;
  lastUsed: number;
}

export class Cache implements CacheBackend, BlobHost {
  readonly dir: string;
  readonly slots: FetchSlots;
  readonly tuning: BlobTuning;
  readonly prefetchThrottle: Throttle | undefined;
  readonly maxSize: number | undefined;
  readonly clock: CacheClock;
  private readonly high: number;
  private readonly low: number;
  private readonly open = new Map<string, Promise<CachedBlobEntry>>();
  private readonly blobs = new Map<string, CachedBlobEntry>();
  private readonly disk = new Map<string, DiskEntry>();
  private readonly bootstraps: BootstrapStore;
  readonly metadata: ImageMetadataStore;
  private evicting: Promise<void> | null = null;
  /** Closed blobs whose files an eviction is unlinking: an openBlob of one waits for it. */
  private readonly removing = new Map<string, Promise<void>>();
  private bootstrapBytesCached = 0;
  /** Bytes about to be written (reserved, not yet in any blob's allocatedBytes). */
  private reserved = 0;
  private closed = false;
  private readonly stopTimers: (() => void)[] = [];
  private readonly idleCloseMs: number;
  /** When each open blob was last handed out by openBlob. */
  private readonly lastOpened = new Map<string, number>();
  /** Blobs being closed for idleness: a new openBlob of one waits for its close. */
  private readonly closing = new Map<string, Promise<void>>();
  /** Closed blobs whose files `verify` is checking: an openBlob of one waits, eviction passes it over. */
  private readonly verifying = new Map<string, Promise<void>>();
  /** Statistics of blobs closed for idleness (the cache-wide counters keep them). */
  private retired: BlobStats = sumStats([]);
  /** Blobs evicted since this process opened the cache (for status and metrics). */
  evictedBlobs = 0;

  private readonly tamperWatch: TamperWatch | undefined;

  private constructor(private readonly layout: CacheLayout, private readonly lock: CacheLock, options: CacheOptions) {
    this.dir = layout.dir;
    this.tuning = { ...DEFAULT_TUNING, ...definedOnly(options) };
    this.clock = options.clock ?? systemClock;
    this.slots = new FetchSlots(options.maxConcurrentFetches ?? 8);
    this.prefetchThrottle = this.tuning.prefetchBytesPerSecond > 0 ? new Throttle(this.tuning.prefetchBytesPerSecond, this.clock) : undefined;
    this.maxSize = options.maxSize;
    this.high = options.highWatermark ?? 0.95;
    this.low = options.lowWatermark ?? 0.8;
    if (!(this.low > 0 && this.low <= this.high && this.high <= 1)) {
      throw new CacheError(`bad watermarks: need 0 < low (${this.low}) <= high (${this.high}) <= 1`, { path: this.dir });
    }
    this.bootstraps = new BootstrapStore(layout);
    this.metadata = new ImageMetadataStore(layout.dir, layout.tmp);
    // Last-use times are persisted lazily: once a minute, and on close.
    this.stopTimers.push(this.clock.every(60_000, () => this.persistLastUsed()));
    this.idleCloseMs = options.idleCloseMs ?? 10_000;
    if (this.idleCloseMs > 0) this.stopTimers.push(this.clock.every(Math.max(500, this.idleCloseMs / 2), () => this.closeIdle()));
    this.tamperWatch = options.watchChanges === false ? undefined : TamperWatch.start();
  }

  /** BlobHost: see TamperWatch. */
  watchDataFile(fd: number, changed: (pid: number) => void): () => void {
    return this.tamperWatch?.watch(fd, changed) ?? (() => undefined);
  }

  static async open(options: CacheOptions = {}): Promise<Cache> {
    const layout = prepareCacheDir(resolveCacheDir(options.dir));
    const lock = options.heldLockFd !== undefined ? adoptCacheLock(options.heldLockFd) : acquireCacheLock(layout.lock, layout.dir);
    try {
      const cache = new Cache(layout, lock, options);
      cache.scan();
      return cache;
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  /** Indexes blobs on disk and clears leftovers of interrupted writes. */
  private scan(): void {
    rmSync(this.layout.tmp, { recursive: true, force: true });
    prepareCacheDir(this.dir);
    for (const name of readdirSync(this.layout.blobs)) {
      const m = BLOB_FILE_NAME.exec(name);
      if (!m) continue;
      const id = m[1] as string;
      const st = lstatSync(join(this.layout.blobs, name));
      const e = this.disk.get(id) ?? { bytes: 0, lastUsed: 0 };
      e.bytes += st.blocks * 512;
      if (m[2] === 'map') e.lastUsed = readMapSummary(join(this.layout.blobs, name))?.lastUsed ?? st.mtimeMs;
      this.disk.set(id, e);
    }
    this.bootstrapBytesCached = this.bootstrapBytes();
  }

  openBlob(descriptor: BlobDescriptor, options: OpenBlobOptions): Promise<CachedBlob> {
    if (this.closed) return Promise.reject(new CacheError('cache is closed', { path: this.dir }));
    const id = options.toc.blobId;
    this.lastOpened.set(id, this.clock.now());
    const source = { descriptor, fetcher: options.fetcher, toc: options.toc, ...(options.image ? { image: options.image } : {}) };
    let p = this.open.get(id);
    if (!p) {
      // An idle close or an eviction of this blob's files that started before this open ends first:
      // the open then reads the map and data file they left, never ones being unlinked under it.
      const before = Promise.all([this.closing.get(id), this.removing.get(id), this.verifying.get(id)]);
      p = before.then(() => CachedBlobEntry.open(this, source, blobPaths(this.layout, id))).then(
        (entry) => {
          this.disk.delete(id);
          this.blobs.set(id, entry);
          return entry;
        },
        (err: unknown) => {
          this.open.delete(id);
          throw err;
        },
      );
      this.open.set(id, p);
      // Held for this opener until its first pin, lease or use (the same tick, for mounts).
      return p.then((entry) => {
        entry.holdForOpener(OPEN_HOLD_MS);
        return entry;
      });
    }
    // Already open: the newest opener's fetcher serves from now on (an earlier one may be closed).
    return p.then((entry) => {
      entry.replaceSource(source);
      entry.holdForOpener(OPEN_HOLD_MS);
      return entry;
    });
  }

  async bootstrapPath(digest: string, fetch: () => Promise<Buffer>): Promise<string> {
    const path = await this.bootstraps.path(digest, fetch);
    this.bootstrapBytesCached = this.bootstrapBytes();
    return path;
  }

  stats(): BlobStats {
    return sumStats([this.retired, ...[...this.blobs.values()].map((b) => b.stats())]);
  }

  /**
   * Closes blobs that are unpinned, idle and neither opened nor read for idleCloseMs. The check and the
   * removal from the maps are synchronous, so an openBlob either gets the entry before (and pins it in
   * the same tick, as mounts do) or opens it afresh after the close finished. Resolves when those
   * closes are done.
   */
  private closeIdle(): Promise<void> {
    if (this.closed) return Promise.resolve();
    const now = this.clock.now();
    const closes: Promise<void>[] = [];
    for (const [id, entry] of this.blobs) {
      const last = Math.max(entry.lastUsed, this.lastOpened.get(id) ?? 0);
      if (!entry.evictable() || now - last < this.idleCloseMs) continue;
      this.blobs.delete(id);
      this.open.delete(id);
      this.lastOpened.delete(id);
      const s = entry.stats();
      this.retired = sumStats([this.retired, { ...s, framesPresent: 0, framesTotal: 0 }]);
      const done = entry.close()
        .catch((err: unknown) => log.warn({ blob: id.slice(0, 12), err: errorText(err) }, 'cannot close idle blob'))
        .finally(() => {
          this.closing.delete(id);
          this.disk.set(id, { bytes: entry.allocatedBytes, lastUsed: entry.lastUsed });
        });
      this.closing.set(id, done);
      closes.push(done);
      log.debug({ blob: id.slice(0, 12) }, 'closed idle blob');
    }
    return Promise.all(closes).then(() => {});
  }

  /** Per-blob statistics of the blobs this process has open. */
  blobStats(): Map<string, BlobStats> {
    return new Map([...this.blobs].map(([id, b]) => [id, b.stats()]));
  }

  usage(): number {
    let total = 0;
    for (const b of this.blobs.values()) total += b.allocatedBytes;
    for (const e of this.disk.values()) total += e.bytes;
    return total + this.bootstrapBytesCached + this.metadata.diskBytes() + this.reserved;
  }

  private bootstrapBytes(): number {
    let total = 0;
    for (const name of readdirSync(this.layout.bootstraps)) {
      try {
        total += lstatSync(join(this.layout.bootstraps, name)).blocks * 512;
      } catch {
        // removed meanwhile
      }
    }
    return total;
  }

  /** BlobHost: keeps the directory under its limit before `bytes` more are written. */
  async reserve(bytes: number): Promise<void> {
    this.reserved += bytes;
    if (this.maxSize !== undefined && this.usage() > this.maxSize * this.high) {
      await this.evictDownTo(this.maxSize * this.low);
    }
  }

  release(bytes: number): void {
    this.reserved -= bytes;
  }

  async gc(options: { maxSize?: number } = {}): Promise<GcResult> {
    const limit = options.maxSize ?? (this.maxSize === undefined ? undefined : this.maxSize * this.low);
    const before = this.usage();
    const evicted = limit === undefined ? [] : await this.evictDownTo(limit);
    const dropped = await this.dropMetadataOfEvicted(new Set(evicted));
    const usageBytes = this.usage();
    return { evictedBlobs: evicted, droppedManifests: dropped, freedBytes: Math.max(0, before - usageBytes), usageBytes };
  }

  /** Metadata of images whose blobs are gone goes too; never that of a mounted image (its blobs are pinned). */
  private async dropMetadataOfEvicted(evicted: Set<string>): Promise<string[]> {
    // An open blob that was evicted stays open (empty): it counts as gone.
    const present = (id: string): boolean => !evicted.has(id) && (this.disk.has(id) || this.blobs.has(id) || this.open.has(id));
    const inUse = (id: string): boolean => this.blobs.get(id)?.evictable() === false;
    const drop = await this.metadata.dropImagesWithout(present, inUse);
    for (const digest of drop.bootstraps) await this.bootstraps.forget(digest);
    this.bootstrapBytesCached = this.bootstrapBytes();
    if (drop.manifests.length > 0) log.info({ manifests: drop.manifests.length, bootstraps: drop.bootstraps.length }, 'dropped metadata of evicted images');
    return drop.manifests;
  }

  /** Evicts LRU blobs (never pinned or busy ones) until usage ≤ target. One eviction runs at a time. */
  private async evictDownTo(target: number): Promise<string[]> {
    while (this.evicting) await this.evicting;
    let done!: () => void;
    this.evicting = new Promise<void>((r) => (done = r));
    const evicted: string[] = [];
    try {
      const candidates = [
        ...[...this.disk].map(([id, e]) => ({ id, lastUsed: e.lastUsed })),
        ...[...this.blobs].map(([id, b]) => ({ id, lastUsed: b.lastUsed })),
      ].sort((a, b) => a.lastUsed - b.lastUsed);
      for (const c of candidates) {
        if (this.usage() <= target) break;
        const open = this.blobs.get(c.id);
        try {
          if (open) {
            if (!open.evictable() || open.allocatedBytes <= 4096 * 2) continue;
            await open.evict();
          } else if (this.disk.has(c.id)) {
            if (this.open.has(c.id) || this.verifying.has(c.id)) continue; // being opened or verified right now
            const paths = blobPaths(this.layout, c.id);
            // Registered before the first await: an openBlob from now on waits for the files to be gone.
            const removed = (async (): Promise<void> => {
              // Map first: a data file without a map is re-verified, never trusted.
              await unlink(paths.map).catch(() => {});
              await unlink(paths.data).catch(() => {});
              await unlink(paths.toc).catch(() => {});
              this.disk.delete(c.id);
            })().finally(() => this.removing.delete(c.id));
            this.removing.set(c.id, removed);
            await removed;
          } else continue;
          evicted.push(c.id);
          this.evictedBlobs++;
          log.info({ blob: c.id.slice(0, 12), usage: this.usage(), target }, 'evicted blob from cache');
        } catch (err) {
          log.warn({ blob: c.id.slice(0, 12), err: errorText(err) }, 'cannot evict blob');
        }
      }
      if (this.usage() > target) log.warn({ usage: this.usage(), target }, 'cache over its size limit: the rest is pinned or in use');
    } finally {
      this.evicting = null;
      done();
    }
    return evicted;
  }

  /**
   * Re-hashes every frame the maps claim (`cache verify`): of `tocs`' blobs, else of the blobs whose id
   * starts with one of `blobIds`, else of all. Bad frames are dropped (bit cleared, hole punched).
   * Blobs are checked with the TOC given, else the one stored beside them. A blob this process has
   * open (a daemon's mount) is checked in place while it serves (CachedBlobEntry.reverify: a bad
   * frame is fetched again); a closed one is neither opened nor evicted while its files are checked.
   */
  async verify(target: { tocs?: readonly BlobToc[]; blobIds?: readonly string[] } = {}): Promise<BlobVerifyResult[]> {
    const given = new Map((target.tocs ?? []).map((t) => [t.blobId, t]));
    const onDisk = new Set<string>();
    for (const name of readdirSync(this.layout.blobs)) {
      const m = BLOB_FILE_NAME.exec(name);
      if (m && m[2] !== 'toc') onDisk.add(m[1] as string);
    }
    const prefixes = (target.blobIds ?? []).map((b) => b.replace(/^sha256:/, ''));
    const ids = target.tocs ? [...given.keys()] : [...onDisk].filter((id) => prefixes.length === 0 || prefixes.some((p) => id.startsWith(p)));
    const results: BlobVerifyResult[] = [];
    for (const id of ids.sort()) {
      const ctx = { blob: id.slice(0, 12) };
      // A blob in use (a daemon's mounts) is checked in place, while it serves.
      await Promise.all([this.closing.get(id), this.removing.get(id)]);
      const opened = this.open.get(id);
      if (opened) {
        const r = await (await opened).reverify();
        for (const b of r.bad) log.warn({ ...ctx, frame: b.frame, offset: b.offset, why: b.why }, 'cache verify found a bad frame (fetched again)');
        results.push(r);
        continue;
      }
      const paths = blobPaths(this.layout, id);
      if (!onDisk.has(id) || !existsSync(paths.data)) {
        results.push({ blobId: id, checked: 0, bad: [], skipped: 'not cached' });
        continue;
      }
      const toc = given.get(id) ?? readStoredToc(paths.toc);
      if (!toc || toc.blobId !== id) {
        results.push({ blobId: id, checked: 0, bad: [], skipped: 'no stored table of contents (verify it through its image)' });
        continue;
      }
      const run = verifyBlobFiles(toc, paths, this.tuning.hash, this.clock.now(), logFor(ctx));
      this.verifying.set(id, run.then(() => undefined, () => undefined));
      let r: BlobVerifyResult;
      try {
        r = await run;
      } finally {
        this.verifying.delete(id);
      }
      for (const b of r.bad) log.warn({ ...ctx, frame: b.frame, offset: b.offset, why: b.why }, 'cache verify dropped a bad frame');
      results.push(r);
      this.disk.set(id, { bytes: blobDiskBytes(paths), lastUsed: this.disk.get(id)?.lastUsed ?? 0 });
    }
    return results;
  }

  private async persistLastUsed(): Promise<void> {
    for (const b of this.blobs.values()) await b.persistLastUsed().catch(() => {});
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const stop of this.stopTimers) stop();
    await Promise.allSettled([...this.closing.values()]);
    const opening = [...this.open.values()];
    for (const r of await Promise.allSettled(opening)) if (r.status === 'fulfilled') await r.value.close();
    await this.tamperWatch?.stop();
    this.lock.release();
  }
}

function blobDiskBytes(paths: BlobPaths): number {
  let total = 0;
  for (const p of [paths.data, paths.map, paths.toc]) {
    try {
      total += lstatSync(p).blocks * 512;
    } catch {
      // missing
    }
  }
  return total;
}

function definedOnly(o: Partial<BlobTuning>): Partial<BlobTuning> {
  return Object.fromEntries(Object.entries(o).filter(([k, v]) => v !== undefined && k in DEFAULT_TUNING)) as Partial<BlobTuning>;
}

/** Opens the cache in `options.dir` (or the default), taking the directory's lock. */
export function openCache(options: CacheOptions = {}): Promise<Cache> {
  return Cache.open(options);
}
