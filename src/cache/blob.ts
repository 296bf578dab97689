/**
 * One cached blob as transports see it (CachedBlob): reads and ensures served from the sparse data
 * file, missing frames fetched as the fetch plan says (fetch-plan.ts) by single-flight jobs
 * (fetch-jobs.ts); pins, leases, statistics, the shared presence view, eviction and close.
 * The life of a frame and why a set bit can be trusted: docs/cache.md.
 *
 * Who may read the data file, and why eviction never truncates it under them (docs/cache.md, "Leases"):
 * the cache's own read/ensure count in `active`; a transport that reads the file itself or hands it to
 * the kernel (fscache copy, passthrough, loop swap) holds a `lease()`; the FUSE reader thread follows
 * the presence view's epoch protocol; a blob just returned by openBlob is held until its opener's first
 * pin, lease or use. evictable() is false while any of these holds, and an eviction already running
 * makes isComplete() false, presence views odd and ensure/read wait for it.
 */
import { closeSync, fstatSync, ftruncateSync, read as fsRead } from 'node:fs';
import type { BlobToc, FrameEntry } from '../format/image/types.js';
import type { BlobFetcher } from '../fetch/types.js';
import { CacheError, errorText } from '../util/errors.js';
import { logFor, type Logger } from '../util/log.js';
import type { BlobHost } from './blob-host.js';
import { BlobUsers } from './blob-users.js';
import { allocatedBytesOf, mapIdentityOf, openBlobFiles, type BlobFiles } from './blob-open.js';
import type { BlobPaths } from './dir.js';
import { FetchJobs, type BlobSource, type FrameWait } from './fetch-jobs.js';
import { continuesStream, planRead, type ReadStream } from './fetch-plan.js';
import { cacheIoError, ftruncateAsync, pread, preadInto } from './file-io.js';
import { MAP_FLAG_OPEN } from './map-layout.js';
import { MapWriter } from './map-writer.js';
import { prefetchFrames, type PrefetchTarget } from './prefetch.js';
import { dataRecordOf, PresenceBits } from './presence-map.js';
import { SharedPresence, type PresenceView } from './presence-view.js';
import { StatsCounter } from './stats.js';
import type { BadFrame, BlobVerifyResult } from './verify.js';
import type { BlobStats, CachedBlob, PrefetchOptions } from './types.js';

export class CachedBlobEntry implements CachedBlob {
  readonly blobId: string;
  readonly size: number;
  readonly dataPath: string;
  readonly mapPath: string;
  /**
   * The data file this process has open, by its /proc fd link: whoever opens it by this path gets
   * this very file even if its name was replaced (valid while the blob is open: pinned or leased).
   */
  readonly openDataPath: string;
  /** Bytes this blob occupies on disk (data blocks + map), kept up to date for eviction. */
  allocatedBytes: number;
  lastUsed: number;
  /** Pins, leases and openers: what keeps the blob from eviction, and whose fetcher serves it. */
  private readonly users: BlobUsers;
  /** Reads, ensures and prefetch waits running (jobs count in jobs.running): a busy blob is never evicted. */
  active = 0;
  /** Recent sequential reads, oldest first (see planRead). */
  private streams: readonly ReadStream[] = [];
  /** Prefetches running: not evicted either (see prefetch()). */
  private prefetching = 0;
  private gate: Promise<void> | null = null;
  /** Set when close() starts: no new reads or fetches. */
  private closing = false;

  private readonly frameSize: number;
  private readonly dataFd: number;
  private readonly mapFd: number;
  private readonly bits: PresenceBits;
  /** Frames the map claimed that are not verified yet in this process (see FetchJobs.startVerify). */
  private readonly unverified: PresenceBits;
  private readonly jobs: FetchJobs;
  private readonly map: MapWriter;
  private readonly counters = new StatsCounter();
  private readonly log: Logger;
  /** Made on first presenceView(): other threads read present frames through it. */
  private shared?: SharedPresence;
  /** Frames whose verified bytes are in the data file, durable or not yet (for the presence view). */
  private readonly written: PresenceBits;
  /** Ends the tamper watch of the data file (BlobHost.watchDataFile). */
  private readonly unwatch: (() => void) | undefined;
  /** Told when another process changed the data file (transports that let the kernel read it). */
  private readonly changeListeners = new Set<() => void>();
  private changedBehindCount = 0;
  /** Frames whose stored bytes failed re-verification (and were fetched again), in order: reverify() reports its own. */
  private readonly reverifyFailures: number[] = [];

  private constructor(private readonly host: BlobHost, source: BlobSource, paths: BlobPaths, files: BlobFiles, log: Logger) {
    const toc = source.toc;
    this.blobId = toc.blobId;
    this.size = toc.uncompressedSize;
    this.frameSize = toc.frameSize;
    this.dataPath = paths.data;
    this.mapPath = paths.map;
    this.dataFd = files.dataFd;
    this.openDataPath = `/proc/${process.pid}/fd/${files.dataFd}`;
    this.mapFd = files.mapFd;
    this.bits = files.bits;
    this.written = new PresenceBits(files.bits.frameCount);
    this.unverified = files.unverified;
    this.lastUsed = files.lastUsed;
    this.allocatedBytes = files.allocatedBytes;
    this.log = log;
    this.map = new MapWriter(files.mapFd, mapIdentityOf(toc), files.bits, files.unverified, () => this.lastUsed, log);
    this.jobs = new FetchJobs({
      blobId: this.blobId,
      dir: host.dir,
      dataFd: files.dataFd,
      bits: files.bits,
      unverified: files.unverified,
      counters: this.counters,
      slots: host.slots,
      hash: host.tuning.hash,
      log,
      reserve: (bytes) => host.reserve(bytes),
      release: (bytes) => host.release(bytes),
      allocated: (bytes) => {
        this.allocatedBytes += bytes;
      },
      marked: () => this.map.schedule(),
      wrote: (i) => this.written.set(i),
      unwrote: (i) => this.written.clear(i),
      reverifyFailed: (i) => this.reverifyFailures.push(i),
    }, source);
    this.users = new BlobUsers(() => this.jobs.source, (next) => { this.jobs.source = next; }, () => host.clock.now());
    this.users.opener(source);
    this.unwatch = host.watchDataFile?.(files.dataFd, (pid) => this.changedBehind(pid));
  }

  /**
   * Opens or creates the blob's files (blob-open.ts), marks the map as owned by this process, and
   * starts re-verifying the frames the map claimed but could not vouch for (in the background).
   */
  static async open(host: BlobHost, source: BlobSource, paths: BlobPaths): Promise<CachedBlobEntry> {
    const { descriptor, toc } = source;
    if (descriptor.blobId !== toc.blobId || descriptor.uncompressedSize !== toc.uncompressedSize) {
      throw new CacheError('table of contents does not match the blob descriptor', { blob: toc.blobId, path: paths.data });
    }
    const log = logFor({ blob: toc.blobId.slice(0, 12) });
    const files = openBlobFiles(toc, paths, { verifyOnOpen: host.tuning.verifyOnOpen, now: host.clock.now() }, log);
    const entry = new CachedBlobEntry(host, source, paths, files, log);
    try {
      await entry.map.write(MAP_FLAG_OPEN);
    } catch (err) {
      entry.unwatch?.();
      closeSync(files.dataFd);
      closeSync(files.mapFd);
      throw cacheIoError(err, 'open cache entry', { blob: toc.blobId, path: paths.data });
    }
    entry.jobs.startVerify();
    return entry;
  }

  get toc(): BlobToc {
    return this.jobs.source.toc;
  }

  /**
   * Uses a newer opener's fetcher (the previous one may be closed by an unmount). The new TOC must
   * cut the same uncompressed view into the same frames, so the presence bits stay valid.
   */
  replaceSource(source: BlobSource): void {
    const { toc } = source;
    const old = this.toc;
    const same = toc.blobId === old.blobId && toc.uncompressedSize === old.uncompressedSize && toc.frameSize === old.frameSize &&
      toc.frames.length === old.frames.length && toc.frames.every((f, i) => f.digest === (old.frames[i] as FrameEntry).digest);
    if (!same) throw new CacheError('blob is already cached with a different frame layout', { blob: this.blobId });
    this.jobs.source = source;
    this.users.opener(source);
  }

  // ---- the transport-facing API ----

  read(offset: number, length: number): Promise<Buffer> {
    const end = Math.min(this.size, offset + Math.max(0, length));
    if (offset < 0 || !Number.isSafeInteger(offset)) return this.readFailed(offset, length, new CacheError(`bad read offset ${offset}`, { blob: this.blobId }));
    if (offset >= end) return Promise.resolve(Buffer.alloc(0));
    this.lastUsed = this.host.clock.now();
    this.users.usedByAll();
    const first = Math.floor(offset / this.frameSize);
    const last = Math.floor((end - 1) / this.frameSize);
    if (this.closing) return this.readFailed(offset, length, new CacheError('cache is closed', { blob: this.blobId }));
    if (this.gate === null && this.bits.hasAll(first, last)) {
      this.readAheadOnHit(first, last);
      // The hot path: one pread into a fresh buffer, no other allocation or promise chain.
      this.counters.hits++;
      this.active++;
      const n = end - offset;
      const buf = Buffer.allocUnsafe(n);
      return new Promise<Buffer>((resolve, reject) => {
        fsRead(this.dataFd, buf, 0, n, offset, (err, got) => {
          if (err) {
            this.active--;
            reject(cacheIoError(err, `read cached blob at ${offset}`, { blob: this.blobId, path: this.dataPath }));
          } else if (got === n) {
            this.active--;
            resolve(buf);
          } else {
            preadInto(this.dataFd, buf, got, n - got, offset + got).then(
              () => resolve(buf),
              (e: unknown) => reject(cacheIoError(e, `read cached blob at ${offset}`, { blob: this.blobId, path: this.dataPath })),
            ).finally(() => this.active--);
          }
        });
      }).catch((err: unknown) => this.readFailed(offset, n, err));
    }
    return this.slowRead(offset, end, first, last).catch((err: unknown) => this.readFailed(offset, end - offset, err));
  }

  /** A read a transport will answer with an error: counted, and logged with the blob and the bytes. */
  private readFailed(offset: number, length: number, err: unknown): Promise<never> {
    this.counters.failedReads++;
    this.log.warn({ image: this.jobs.source.image, blob: this.blobId, offset, length, err: errorText(err) }, 'read failed');
    return Promise.reject(err instanceof Error ? err : new CacheError(errorText(err), { blob: this.blobId, offset }));
  }

  async ensure(offset: number, length: number, options: { durable?: boolean } = {}): Promise<void> {
    const end = Math.min(this.size, offset + Math.max(0, length));
    if (offset >= end) return;
    this.lastUsed = this.host.clock.now();
    this.users.usedByAll();
    const first = Math.floor(offset / this.frameSize);
    const last = Math.floor((end - 1) / this.frameSize);
    if (this.gate === null && this.bits.hasAll(first, last)) {
      this.readAheadOnHit(first, last);
      this.counters.hits++;
      return;
    }
    this.active++;
    try {
      const waits = await this.startFetches(first, last);
      if (waits === undefined) return;
      const started = performance.now();
      try {
        await Promise.all(waits.map((w) => (options.durable === false ? w?.written : w?.promise) ?? Promise.resolve()));
      } finally {
        this.counters.recordWait(performance.now() - started);
      }
    } catch (err) {
      return this.readFailed(offset, end - offset, err);
    } finally {
      this.active--;
    }
  }

  /** False while an eviction runs: its bits are still set until it clears them, but the file is going. */
  isComplete(): boolean {
    return this.gate === null && this.bits.count === this.bits.frameCount;
  }

  /**
   * Makes the blob non-evictable until the returned release is called (idempotent): for whoever reads
   * the data file without going through read() (or lets the kernel read it). A counter, no I/O. It
   * does not stop an eviction already running: take it first, then check isComplete() (false during
   * one) or call ensure() (waits for it) before touching the file.
   */
  lease(): () => void {
    return this.users.lease();
  }

  /** A lease when the blob is complete now (and so stays until released); undefined otherwise. */
  leaseIfComplete(): (() => void) | undefined {
    return this.isComplete() ? this.lease() : undefined;
  }

  /**
   * openBlob is handing this blob to an opener: not evicted until that opener pins, leases or uses it
   * (or `ms` pass), so nothing is dropped between an open and its first pin.
   */
  holdForOpener(ms: number): void {
    this.users.holdForOpener(ms);
  }

  idle(): Promise<void> {
    return this.jobs.idle();
  }

  hasFrame(index: number): boolean {
    return this.bits.has(index);
  }

  stats(): BlobStats {
    const s = this.counters.snapshot(this.bits.count, this.bits.frameCount);
    if (this.shared) s.hits += this.shared.hits();
    if (this.changedBehindCount > 0) s.changedBehind = this.changedBehindCount;
    return s;
  }

  onChangedBehind(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /**
   * Another process wrote, cut or punched the data file while this process has it open (the tamper
   * watch says so): nothing in it is trusted until verified again (docs/cache.md, "Changed while
   * served"). Transports letting the kernel read the file are told first; the presence view changes
   * under its epoch, so other threads drop what they read meanwhile; the size comes back.
   */
  private changedBehind(pid: number): void {
    this.changedBehindCount += 1;
    this.log.warn({ image: this.jobs.source.image, blob: this.blobId, pid, path: this.dataPath },
      'cache data file changed by another process while open: every frame is verified again before it is served');
    this.distrustData();
  }

  /**
   * `cache verify` of a blob in use: every present frame is re-hashed as after a change behind the
   * cache (transports stop reading the file unchecked, readers wait for their frame's check, a bad
   * frame is fetched again), then the frames found bad are reported, once each was checked (or fetched).
   */
  async reverify(): Promise<BlobVerifyResult> {
    while (this.gate) await this.gate;
    if (this.closing) throw new CacheError('cache is closed', { blob: this.blobId });
    const frames = [...this.bits.present(), ...this.unverified.present()];
    const from = this.reverifyFailures.length;
    this.distrustData();
    // Their checks (and the fetches of bad ones), not every job: a busy mount may never be idle.
    const checks: Promise<void>[] = [];
    for (const i of frames) {
      const wait = this.jobs.wait(i);
      if (wait) checks.push(wait.promise.catch(() => undefined));
    }
    await Promise.all(checks);
    const bad = this.reverifyFailures.slice(from).map((i): BadFrame => {
      const f = this.jobs.frames[i] as FrameEntry;
      return { blobId: this.blobId, frame: i, offset: f.uncompressedOffset, length: f.uncompressedSize, why: 'digest' };
    });
    return { blobId: this.blobId, checked: frames.length, bad };
  }

  /** Nothing in the data file is trusted until verified again (changedBehind, reverify). */
  private distrustData(): void {
    for (const listener of this.changeListeners) listener();
    if (this.closing) return;
    // An eviction running keeps the view odd itself (and restores the size).
    const bracket = this.gate === null;
    if (bracket) this.shared?.beginChange();
    try {
      this.written.clearAll();
      this.jobs.distrust();
      if (bracket && fstatSync(this.dataFd).size !== this.size) ftruncateSync(this.dataFd, this.size);
    } catch (err) {
      this.log.error({ blob: this.blobId, err: errorText(err) }, 'cannot restore the size of a cache data file changed behind the cache');
    } finally {
      if (bracket) this.shared?.endChange();
    }
    this.map.schedule();
  }

  presenceView(): PresenceView {
    this.shared ??= new SharedPresence(
      { blobId: this.blobId, size: this.size, frameSize: this.frameSize, frameCount: this.bits.frameCount, dataPath: this.openDataPath },
      this.bits.bits,
      this.written.bits,
    );
    // Made while an eviction runs: odd until it ends (evict() brackets only the view that existed when it began).
    if (this.gate) this.shared.beginChange();
    if (this.closing) this.shared.retire();
    return this.shared.view;
  }

  pin(fetcher?: BlobFetcher): () => void {
    // A new mount's readers start without streams: an earlier mount's would read ahead from where
    // its readers stopped as soon as the new ones pass there (a second mount fetching what no one read).
    this.streams = [];
    return this.users.pin(fetcher);
  }

  async prefetch(options: PrefetchOptions = {}): Promise<void> {
    // Not into an eviction, and none while this runs (evictable() counts prefetches): its workers sit
    // in the throttle between fetches, and an eviction there would drop frames already passed over or
    // let a frame written before the truncate be marked after the clearAll (a bit naming a hole).
    this.users.usedByAll();
    while (this.gate) await this.gate;
    this.prefetching++;
    try {
      await prefetchFrames(this.prefetchTarget(), options);
    } finally {
      this.prefetching--;
    }
  }

  private prefetchTarget(): PrefetchTarget {
    const tuning = this.host.tuning;
    return {
      size: this.size,
      frameSize: this.frameSize,
      jobs: this.jobs,
      maxMergeBytes: tuning.maxMergeBytes,
      concurrency: tuning.prefetchConcurrency,
      throttle: this.host.prefetchThrottle,
      clock: this.host.clock,
      closing: () => this.closing,
      busy: async <T>(p: Promise<T>): Promise<T> => {
        this.active++;
        try {
          return await p;
        } finally {
          this.active--;
        }
      },
      fetched: (bytes: number): void => {
        this.counters.prefetchRequestsFetched++;
        this.counters.prefetchBytesFetched += bytes;
      },
    };
  }

  // ---- fetching ----

  /**
   * A read that needs frames not yet present. Frames still in flight are served from their verified
   * bytes as soon as verification passes, without waiting for the write and fdatasync that make them
   * present (verification, not durability, is what makes bytes right); the rest comes from the file.
   */
  private async slowRead(offset: number, end: number, first: number, last: number): Promise<Buffer> {
    this.active++;
    try {
      const waits = await this.startFetches(first, last);
      if (waits === undefined) return await pread(this.dataFd, end - offset, offset);
      const started = performance.now();
      let mem: (Buffer | undefined)[];
      try {
        mem = await Promise.all(waits.map((w) => w?.verified ?? Promise.resolve(undefined)));
      } finally {
        this.counters.recordWait(performance.now() - started);
      }
      const frames = this.jobs.frames;
      const out = Buffer.allocUnsafe(end - offset);
      let i = first;
      while (i <= last) {
        const f = frames[i] as FrameEntry;
        const bytes = mem[i - first];
        if (bytes) {
          const from = Math.max(offset, f.uncompressedOffset);
          const to = Math.min(end, f.uncompressedOffset + f.uncompressedSize);
          bytes.copy(out, from - offset, from - f.uncompressedOffset, to - f.uncompressedOffset);
          i++;
          continue;
        }
        // A run of frames that were present: one pread.
        let j = i;
        while (j < last && mem[j + 1 - first] === undefined) j++;
        const fj = frames[j] as FrameEntry;
        const from = Math.max(offset, f.uncompressedOffset);
        const to = Math.min(end, fj.uncompressedOffset + fj.uncompressedSize);
        await preadInto(this.dataFd, out, from - offset, to - from, from);
        i = j + 1;
      }
      return out;
    } finally {
      this.active--;
    }
  }

  /**
   * Starts the fetches the read plan asks for frames first..last and returns, per frame, its
   * in-flight wait (undefined = present); undefined when all are present.
   */
  private async startFetches(first: number, last: number): Promise<(FrameWait | undefined)[] | undefined> {
    while (this.gate) await this.gate;
    if (this.closing) throw new CacheError('cache is closed', { blob: this.blobId });
    if (this.bits.hasAll(first, last)) {
      this.counters.hits++;
      return undefined;
    }
    this.counters.misses++;
    this.plan(first, last);
    const waits: (FrameWait | undefined)[] = [];
    for (let i = first; i <= last; i++) waits.push(this.bits.has(i) ? undefined : this.jobs.wait(i));
    return waits;
  }

  /** Starts what the read plan asks for a read of frames first..last: its own fetches, then its read-ahead. */
  private plan(first: number, last: number): void {
    const { maxMergeBytes, readAheadFrames } = this.host.tuning;
    const readAheadJobBytes = this.jobs.source.fetcher.readAheadRequestBytes ?? this.host.tuning.readAheadJobBytes;
    const plan = planRead({ frames: this.jobs.frames, states: this.jobs, maxMergeBytes, readAheadFrames, readAheadJobBytes }, this.streams, first, last);
    this.streams = plan.streams;
    for (const step of plan.steps) {
      if (step.kind === 'fetch') this.jobs.start(step.first, step.last, 'demand');
      else this.jobs.promote(step.frame);
    }
    for (const step of plan.ahead) if (step.kind === 'fetch') this.jobs.start(step.first, step.last, 'prefetch');
  }

  /** A read served from present frames that reached a stream's trigger keeps that stream's read-ahead going. */
  private readAheadOnHit(first: number, last: number): void {
    if (this.streams.length > 0 && continuesStream(this.streams, first, last)) this.plan(first, last);
  }

  readElsewhere(offset: number, length: number): void {
    const end = Math.min(this.size, offset + Math.max(0, length));
    if (offset < 0 || offset >= end || this.closing || this.gate !== null) return;
    this.lastUsed = this.host.clock.now();
    this.users.usedByAll();
    this.readAheadOnHit(Math.floor(offset / this.frameSize), Math.floor((end - 1) / this.frameSize));
  }

  /** Persists the last-use time if it moved (cheap: one small pwrite, no sync). */
  async persistLastUsed(): Promise<void> {
    if (this.closing) return;
    await this.map.persistLastUsed();
  }

  // ---- eviction and close ----

  /** True when eviction may drop this blob's data now: nobody pins, leases, uses or is about to use it. */
  evictable(): boolean {
    return !this.users.holding() && this.active === 0 && this.jobs.running === 0 && this.jobs.pending === 0 && this.prefetching === 0 && this.gate === null && !this.closing;
  }

  /**
   * Drops every frame: bits cleared and the map made durable first, then the data blocks freed, so a
   * crash in between never leaves a bit naming a hole. Readers arriving meanwhile wait on the gate.
   */
  async evict(): Promise<number> {
    let open!: () => void;
    this.gate = new Promise<void>((r) => (open = r));
    this.shared?.beginChange();
    const before = this.allocatedBytes;
    try {
      await this.map.flush();
      this.bits.clearAll();
      this.written.clearAll();
      await this.map.writeDurably(MAP_FLAG_OPEN);
      await ftruncateAsync(this.dataFd, 0);
      await ftruncateAsync(this.dataFd, this.size);
      this.allocatedBytes = allocatedBytesOf(this.dataFd, this.bits.frameCount);
    } finally {
      this.gate = null;
      this.shared?.endChange();
      open();
    }
    return before - this.allocatedBytes;
  }

  /**
   * Waits for running work, writes the map with the clean flag and the data file's record, and closes
   * the files. Frames still unverified keep the map unclean: the next open verifies them.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.shared?.retire();
    this.unwatch?.();
    this.jobs.cancelVerify(new CacheError('cache is closed', { blob: this.blobId }));
    while (this.active > 0 || this.jobs.running > 0 || this.jobs.pending > 0) await new Promise((r) => setTimeout(r, 5));
    await this.map.flush();
    try {
      if (this.unverified.count > 0) await this.map.writeDurably(MAP_FLAG_OPEN);
      else await this.map.writeDurably(0, dataRecordOf(this.dataFd));
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'cannot write presence map on close');
    }
    closeSync(this.dataFd);
    closeSync(this.mapFd);
  }
}
