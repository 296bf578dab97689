/**
 * One cached blob: the sparse data file, its presence bits, and the single-flight fetch of frames.
 *
 * A frame goes: missing → in flight (one FrameWait shared by every reader) → fetched in a merged
 * range request → decompressed and verified against the TOC → written → fdatasync (group commit)
 * → bit set in memory → map rewritten (coalesced). Any failure before the bit is set rejects the
 * waiters with a typed error and drops the frame from the in-flight table, so the next read fetches
 * again. The persisted map therefore only ever names durable, verified frames.
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readSync } from 'node:fs';
import { ftruncate, read as fsRead } from 'node:fs';
import type { BlobDescriptor, BlobToc, FrameEntry } from '../format/image/types.js';
import type { BlobFetcher } from '../fetch/types.js';
import { seekData } from '../native/fsops.js';
import { CacheError, FetchError, IntegrityError, OndemandError, errorText, systemCode } from '../util/errors.js';
import { logFor, type Logger } from '../util/log.js';
import { fdatasyncAsync, GroupSync, pread, preadInto, pwritev } from './file-io.js';
import { decodeFrame, sha256Hex, type HashMode } from './frame-codec.js';
import { MAP_FLAG_OPEN, mapFileSize } from './map-layout.js';
import { decodeMap, encodeMap, PresenceBits, type MapIdentity } from './presence-map.js';
import { FetchSlots, Throttle, type Priority } from './scheduler.js';
import { StatsCounter } from './stats.js';
import type { BlobStats, CachedBlob, PrefetchOptions } from './types.js';
import { SharedPresence, type PresenceView } from './presence-view.js';

/** Sequential reads of one blob followed at once (files read side by side). */
const MAX_STREAMS = 8;

/** A sequential read followed: the frame it continues at, and the read-ahead it last got. */
interface ReadStream {
  next: number;
  window: number;
}

export interface BlobTuning {
  /** Cap on the stored bytes of one merged range request. */
  maxMergeBytes: number;
  /** Missing frames after a sequential demand read's last frame fetched along with it. */
  readAheadFrames: number;
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
  /**
   * Called before writing `bytes` new bytes: may evict other blobs to stay under the size limit.
   * The bytes count as used until `release(bytes)`, called once they are in allocatedBytes (or failed).
   */
  reserve(blob: CachedBlobEntry, bytes: number): Promise<void>;
  release(bytes: number): void;
  /** Shared default prefetch throttle (undefined when uncapped). */
  readonly prefetchThrottle: Throttle | undefined;
}

interface FrameWait {
  /** Settles when the frame is present (durable + verified) or has failed. */
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
  /** Settles with the frame's bytes as soon as they are verified (before they are durable). */
  verified: Promise<Buffer>;
  resolveVerified: (bytes: Buffer) => void;
  rejectVerified: (err: Error) => void;
  job: FetchJob;
}

interface BlobSource {
  descriptor: BlobDescriptor;
  fetcher: BlobFetcher;
  toc: BlobToc;
}

interface FetchJob {
  first: number;
  last: number;
  priority: Priority;
  promote: () => void;
  /** The source the job was planned against (its stored offsets). */
  source: BlobSource;
}

const BLOCK = 4096;
const roundUp = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;

export class CachedBlobEntry implements CachedBlob {
  readonly blobId: string;
  readonly size: number;
  readonly dataPath: string;
  readonly mapPath: string;
  /** Bytes this blob occupies on disk (data blocks + map), kept up to date for eviction. */
  allocatedBytes = 0;
  lastUsed: number;
  private lastUsedPersisted: number;
  pins = 0;
  /** Reads, ensures and fetch jobs running: a busy blob is never evicted. */
  active = 0;
  /** Recent sequential reads, oldest first (see sequentialStream). */
  private readonly streams: ReadStream[] = [];
  /** Prefetches running: not evicted either (see prefetch()). */
  private prefetching = 0;
  private gate: Promise<void> | null = null;
  /** Set when close() starts: no new reads or fetches. */
  private closing = false;

  /** Where frames come from; replaced whole when another opener brings a fresh fetcher. */
  private source: BlobSource;
  private frames: FrameEntry[];
  private readonly frameSize: number;
  private readonly bits: PresenceBits;
  private readonly inflight = new Map<number, FrameWait>();
  private readonly counters = new StatsCounter();
  private readonly groupSync: GroupSync;
  private mapWrite: Promise<void> | null = null;
  private mapDirty = false;
  private readonly log: Logger;
  /** Made on first presenceView(): other threads read present frames through it. */
  private shared?: SharedPresence;

  private constructor(
    private readonly host: BlobHost,
    descriptor: BlobDescriptor,
    fetcher: BlobFetcher,
    toc: BlobToc,
    paths: { data: string; map: string },
    private readonly dataFd: number,
    private readonly mapFd: number,
    bits: PresenceBits,
    lastUsed: number,
  ) {
    this.source = { descriptor, fetcher, toc };
    this.blobId = toc.blobId;
    this.size = toc.uncompressedSize;
    this.frames = toc.frames;
    this.frameSize = toc.frameSize;
    this.dataPath = paths.data;
    this.mapPath = paths.map;
    this.bits = bits;
    this.lastUsed = lastUsed;
    this.lastUsedPersisted = lastUsed;
    this.groupSync = new GroupSync(dataFd);
    this.log = logFor({ blob: toc.blobId.slice(0, 12) });
  }

  /** Opens or creates the blob's files, loading the map and repairing it when it cannot be trusted. */
  static async open(
    host: BlobHost, descriptor: BlobDescriptor, fetcher: BlobFetcher, toc: BlobToc, paths: { data: string; map: string },
  ): Promise<CachedBlobEntry> {
    const ctx = { blob: toc.blobId, path: paths.data };
    if (descriptor.blobId !== toc.blobId || descriptor.uncompressedSize !== toc.uncompressedSize) {
      throw new CacheError('table of contents does not match the blob descriptor', ctx);
    }
    const identity: MapIdentity = {
      blobId: toc.blobId, size: toc.uncompressedSize, frameSize: toc.frameSize, frameCount: toc.frames.length,
    };
    let dataFd = -1;
    let mapFd = -1;
    try {
      dataFd = openSync(paths.data, constants.O_RDWR | constants.O_CREAT, 0o644);
      mapFd = openSync(paths.map, constants.O_RDWR | constants.O_CREAT, 0o644);
      const dataSize = fstatSync(dataFd).size;
      const mapBytes = readWhole(mapFd);
      const decoded = mapBytes.length === 0 && dataSize === 0 ? { invalid: 'new' } : decodeMap(mapBytes, identity);
      let bits: PresenceBits;
      let lastUsed = Date.now();
      let verify: 'none' | 'present' | 'all' = 'none';
      if ('invalid' in decoded) {
        bits = new PresenceBits(identity.frameCount);
        if (decoded.invalid !== 'new') verify = 'all';
      } else {
        bits = decoded.bits;
        lastUsed = decoded.lastUsed || lastUsed;
        if (decoded.unclean || host.tuning.verifyOnOpen === 'always') verify = 'present';
      }
      if (dataSize !== identity.size) {
        if (dataSize !== 0) logFor(ctx).warn({ dataSize, expected: identity.size }, 'cache data file has the wrong size; repairing');
        ftruncateSync(dataFd, identity.size);
        if (verify === 'none' && dataSize !== 0) verify = 'all';
      }
      const entry = new CachedBlobEntry(host, descriptor, fetcher, toc, paths, dataFd, mapFd, bits, lastUsed);
      if (verify !== 'none') {
        if (verify === 'all') entry.log.warn({ reason: 'invalid' in decoded ? decoded.invalid : 'size' }, 'presence map cannot be trusted; re-verifying frames');
        await entry.reverify(verify);
      }
      entry.allocatedBytes = fstatSync(dataFd).blocks * 512 + roundUp(mapFileSize(identity.frameCount));
      await entry.writeMapAt0(MAP_FLAG_OPEN);
      return entry;
    } catch (err) {
      if (dataFd >= 0) closeSync(dataFd);
      if (mapFd >= 0) closeSync(mapFd);
      if (err instanceof OndemandError) throw err;
      throw cacheIoError(err, 'open cache entry', ctx);
    }
  }

  get toc(): BlobToc {
    return this.source.toc;
  }

  /**
   * Uses a newer opener's fetcher (the previous one may be closed by an unmount). The new TOC must
   * cut the same uncompressed view into the same frames, so the presence bits stay valid.
   */
  replaceSource(descriptor: BlobDescriptor, fetcher: BlobFetcher, toc: BlobToc): void {
    const old = this.source.toc;
    const same = toc.blobId === old.blobId && toc.uncompressedSize === old.uncompressedSize && toc.frameSize === old.frameSize &&
      toc.frames.length === old.frames.length && toc.frames.every((f, i) => f.digest === (old.frames[i] as FrameEntry).digest);
    if (!same) throw new CacheError('blob is already cached with a different frame layout', { blob: this.blobId });
    this.source = { descriptor, fetcher, toc };
    this.frames = toc.frames;
  }

  // ---- the transport-facing API ----

  read(offset: number, length: number): Promise<Buffer> {
    const end = Math.min(this.size, offset + Math.max(0, length));
    if (offset < 0 || !Number.isSafeInteger(offset)) return Promise.reject(new CacheError(`bad read offset ${offset}`, { blob: this.blobId }));
    if (offset >= end) return Promise.resolve(Buffer.alloc(0));
    this.lastUsed = Date.now();
    const first = Math.floor(offset / this.frameSize);
    const last = Math.floor((end - 1) / this.frameSize);
    if (this.closing) return Promise.reject(new CacheError('cache is closed', { blob: this.blobId }));
    if (this.gate === null && this.bits.hasAll(first, last)) {
      // The hot path: one pread into a fresh buffer, no other allocation or promise chain.
      this.counters.hits++;
      this.active++;
      const n = end - offset;
      const buf = Buffer.allocUnsafe(n);
      return new Promise((resolve, reject) => {
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
      });
    }
    return this.slowRead(offset, end, first, last);
  }

  async ensure(offset: number, length: number): Promise<void> {
    const end = Math.min(this.size, offset + Math.max(0, length));
    if (offset >= end) return;
    this.lastUsed = Date.now();
    const first = Math.floor(offset / this.frameSize);
    const last = Math.floor((end - 1) / this.frameSize);
    if (this.gate === null && this.bits.hasAll(first, last)) {
      this.counters.hits++;
      return;
    }
    this.active++;
    try {
      await this.acquire(first, last);
    } finally {
      this.active--;
    }
  }

  isComplete(): boolean {
    return this.bits.count === this.frames.length;
  }

  async idle(): Promise<void> {
    while (this.inflight.size > 0) {
      const first = this.inflight.values().next().value as FrameWait;
      await first.promise.catch(() => {});
    }
  }

  hasFrame(index: number): boolean {
    return this.bits.has(index);
  }

  stats(): BlobStats {
    const s = this.counters.snapshot(this.bits.count, this.frames.length);
    if (this.shared) s.hits += this.shared.hits();
    return s;
  }

  presenceView(): PresenceView {
    this.shared ??= new SharedPresence(
      { blobId: this.blobId, size: this.size, frameSize: this.frameSize, frameCount: this.frames.length, dataPath: this.dataPath },
      this.bits.bits,
    );
    if (this.closing) this.shared.retire();
    return this.shared.view;
  }

  pin(): () => void {
    this.pins++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.pins--;
    };
  }

  async prefetch(options: PrefetchOptions = {}): Promise<void> {
    // Not into an eviction, and none while this runs (evictable() counts prefetches): its workers sit
    // in the throttle between fetches, and an eviction there would drop frames already passed over or
    // let a frame written before the truncate be marked after the clearAll (a bit naming a hole).
    while (this.gate) await this.gate;
    this.prefetching++;
    try {
      await this.prefetchFrames(options);
    } finally {
      this.prefetching--;
    }
  }

  private async prefetchFrames(options: PrefetchOptions): Promise<void> {
    const throttle = options.bytesPerSecond ? new Throttle(options.bytesPerSecond) : this.host.prefetchThrottle;
    const order: [number, number][] = [];
    for (const r of options.ranges ?? []) {
      const end = Math.min(this.size, r.offset + r.length);
      if (r.offset < end) order.push([Math.floor(r.offset / this.frameSize), Math.floor((end - 1) / this.frameSize)]);
    }
    if (!options.rangesOnly && this.frames.length > 0) order.push([0, this.frames.length - 1]);
    let rangeIndex = 0;
    let cursor = order[0]?.[0] ?? 0;
    const errors: Error[] = [];
    const waited: Promise<void>[] = [];
    // Next run of missing frames not yet in flight, in priority order.
    const nextRun = (): [number, number] | undefined => {
      while (rangeIndex < order.length) {
        const [, last] = order[rangeIndex] as [number, number];
        while (cursor <= last && (this.bits.has(cursor) || this.inflight.has(cursor))) {
          const w = this.inflight.get(cursor);
          if (w) waited.push(w.promise);
          cursor++;
        }
        if (cursor <= last) {
          const a = cursor;
          const b = this.runEnd(a, last);
          cursor = b + 1;
          return [a, b];
        }
        rangeIndex++;
        cursor = order[rangeIndex]?.[0] ?? 0;
      }
      return undefined;
    };
    const worker = async (): Promise<void> => {
      for (;;) {
        options.signal?.throwIfAborted();
        if (this.closing) return;
        const run = nextRun();
        if (!run) return;
        const [a, b] = run;
        if (throttle) await throttle.take(this.storedBytes(a, b), options.signal);
        // Frames may have arrived (or started) while throttled: take only what is still missing.
        const waits: Promise<void>[] = [];
        let i = a;
        while (i <= b) {
          if (this.bits.has(i)) {
            i++;
            continue;
          }
          const w = this.inflight.get(i);
          if (w) {
            waits.push(w.promise);
            i++;
            continue;
          }
          const j = this.runEnd(i, b);
          this.startJob(i, j, 'prefetch');
          for (let k = i; k <= j; k++) waits.push((this.inflight.get(k) as FrameWait).promise);
          i = j + 1;
        }
        this.active++;
        try {
          const results = await Promise.allSettled(waits);
          for (const r of results) if (r.status === 'rejected') errors.push(r.reason as Error);
        } finally {
          this.active--;
        }
      }
    };
    const workers = Array.from({ length: Math.max(1, this.host.tuning.prefetchConcurrency) }, () => worker());
    const settled = await Promise.allSettled(workers);
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
    for (const r of await Promise.allSettled(waited)) if (r.status === 'rejected') errors.push(r.reason as Error);
    if (errors.length > 0) throw errors[0];
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
        mem = await Promise.all(waits.map((w) => w?.verified));
      } finally {
        this.counters.recordWait(performance.now() - started);
      }
      const out = Buffer.allocUnsafe(end - offset);
      let i = first;
      while (i <= last) {
        const f = this.frames[i] as FrameEntry;
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
        const fj = this.frames[j] as FrameEntry;
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

  /** Waits until frames first..last are present (written, durable, verified). */
  private async acquire(first: number, last: number): Promise<void> {
    const waits = await this.startFetches(first, last);
    if (waits === undefined) return;
    const started = performance.now();
    try {
      await Promise.all(waits.map((w) => w?.promise));
    } finally {
      this.counters.recordWait(performance.now() - started);
    }
  }

  /**
   * Starts the fetches nobody has started for frames first..last (merged, widened by read-ahead) and
   * returns, per frame, its in-flight wait (undefined = present); undefined when all are present.
   */
  private async startFetches(first: number, last: number): Promise<(FrameWait | undefined)[] | undefined> {
    while (this.gate) await this.gate;
    if (this.closing) throw new CacheError('cache is closed', { blob: this.blobId });
    if (this.bits.hasAll(first, last)) {
      this.counters.hits++;
      return undefined;
    }
    this.counters.misses++;
    let runStart = -1;
    let started = false;
    const flush = (upTo: number): void => {
      if (runStart >= 0) {
        this.startRuns(runStart, upTo);
        started = true;
      }
      runStart = -1;
    };
    for (let i = first; i <= last; i++) {
      if (this.bits.has(i)) {
        flush(i - 1);
        continue;
      }
      const w = this.inflight.get(i);
      if (w) {
        flush(i - 1);
        w.job.promote();
        continue;
      }
      if (runStart < 0) runStart = i;
    }
    // Widen a read that continues a sequential one: the missing, idle frames right after it ride along
    // in the same range request.
    const fetching = started || runStart >= 0;
    const stream = this.sequentialStream(first, last);
    if (stream) stream.window = Math.min(this.host.tuning.readAheadFrames, Math.max(1, stream.window * 2));
    let widenedEnd = last;
    const limit = Math.min(this.frames.length - 1, last + (stream?.window ?? 0));
    while (widenedEnd < limit && !this.bits.has(widenedEnd + 1) && !this.inflight.has(widenedEnd + 1)) widenedEnd++;
    if (runStart < 0 && widenedEnd > last) runStart = last + 1;
    if (stream) stream.next = Math.max(stream.next, widenedEnd + 1);
    else if (fetching) this.newStream(last + 1);
    flush(widenedEnd);
    const waits: (FrameWait | undefined)[] = [];
    for (let i = first; i <= last; i++) waits.push(this.bits.has(i) ? undefined : this.inflight.get(i));
    return waits;
  }

  /**
   * The recent stream that frames first..last continue: they include the frame right after where an
   * earlier fetching read (with its read-ahead) ended. Undefined for an isolated read (a program's
   * first pages, an mmap fault elsewhere, another read of a frame still in flight), which fetches only
   * its own frames: widening every miss by 2 frames had `chroot /bin/true` on Debian minbase fetch 5.9
   * MB instead of 2.5. A stream's read-ahead starts at 1 frame and doubles up to readAheadFrames, so a
   * read of two frames costs no more than it did then.
   */
  private sequentialStream(first: number, last: number): ReadStream | undefined {
    return this.streams.find((st) => st.next >= first && st.next <= last);
  }

  private newStream(next: number): void {
    this.streams.push({ next, window: 0 });
    if (this.streams.length > MAX_STREAMS) this.streams.shift();
  }

  /** Splits frames a..b into jobs at the merge cap and at gaps in the stored layout, and starts them. */
  private startRuns(a: number, b: number): void {
    let i = a;
    while (i <= b) {
      const j = this.runEnd(i, b);
      this.startJob(i, j, 'demand');
      i = j + 1;
    }
  }

  /** Last frame of a mergeable run starting at `a` (≤ b): stored bytes contiguous and under the cap. */
  private runEnd(a: number, b: number): number {
    const cap = this.host.tuning.maxMergeBytes;
    let j = a;
    let bytes = (this.frames[a] as FrameEntry).compressedSize;
    while (j < b) {
      const cur = this.frames[j] as FrameEntry;
      const nxt = this.frames[j + 1] as FrameEntry;
      if (this.bits.has(j + 1) || this.inflight.has(j + 1)) break;
      if (nxt.compressedOffset !== cur.compressedOffset + cur.compressedSize) break;
      if (bytes + nxt.compressedSize > cap) break;
      bytes += nxt.compressedSize;
      j++;
    }
    return j;
  }

  private storedBytes(a: number, b: number): number {
    const fa = this.frames[a] as FrameEntry;
    const fb = this.frames[b] as FrameEntry;
    return fb.compressedOffset + fb.compressedSize - fa.compressedOffset;
  }

  private startJob(first: number, last: number, priority: Priority): void {
    const job: FetchJob = { first, last, priority, promote: () => {}, source: this.source };
    for (let i = first; i <= last; i++) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      let resolveVerified!: (bytes: Buffer) => void;
      let rejectVerified!: (err: Error) => void;
      const verified = new Promise<Buffer>((res, rej) => {
        resolveVerified = res;
        rejectVerified = rej;
      });
      promise.catch(() => {}); // read-ahead frames may have no waiter
      verified.catch(() => {});
      this.inflight.set(i, { promise, resolve, reject, verified, resolveVerified, rejectVerified, job });
    }
    void this.runJob(job);
  }

  private settle(i: number, job: FetchJob, err?: Error): void {
    const w = this.inflight.get(i);
    if (!w || w.job !== job) return;
    this.inflight.delete(i);
    if (err) {
      w.rejectVerified(err);
      w.reject(err);
    } else w.resolve();
  }

  private async runJob(job: FetchJob): Promise<void> {
    const { first, last } = job;
    this.active++;
    try {
      const ticket = this.host.slots.acquire(job.priority);
      job.promote = () => {
        job.priority = 'demand';
        ticket.promote();
      };
      await ticket.granted;
      const { fetcher, descriptor, toc } = job.source;
      const frames = toc.frames;
      const offset = (frames[first] as FrameEntry).compressedOffset;
      const lastFrame = frames[last] as FrameEntry;
      const length = lastFrame.compressedOffset + lastFrame.compressedSize - offset;
      let stored: Buffer;
      try {
        stored = await fetcher.fetchRange(descriptor.digest, { offset, length });
        if (stored.length !== length) {
          throw new FetchError(`fetcher returned ${stored.length} bytes for a ${length}-byte range`, { blob: descriptor.digest, offset, length });
        }
      } catch (err) {
        this.counters.fetchErrors++;
        const e = err instanceof OndemandError
          ? err
          : new FetchError(`fetching frames ${first}-${last} failed: ${errorText(err)}`, { blob: descriptor.digest, offset, length }, { cause: err });
        for (let i = first; i <= last; i++) this.settle(i, job, e);
        return;
      } finally {
        this.host.slots.release();
      }
      this.counters.requestsFetched++;
      this.counters.bytesFetched += length;
      if (last > first) this.counters.mergedRequests++;

      const decoded = await Promise.allSettled(
        this.frameRange(first, last).map((i) => {
          const f = frames[i] as FrameEntry;
          const at = f.compressedOffset - offset;
          return decodeFrame(toc, f, stored.subarray(at, at + f.compressedSize), this.host.tuning.hash, { blob: this.blobId, frame: i });
        }),
      );
      const good: number[] = [];
      decoded.forEach((r, k) => {
        if (r.status === 'rejected') {
          this.counters.integrityErrors++;
          const err = r.reason instanceof Error ? r.reason : new IntegrityError(String(r.reason), { blob: this.blobId });
          this.log.warn({ frame: first + k, err: errorText(err) }, 'fetched frame failed verification; not cached');
          this.settle(first + k, job, err);
        } else good.push(first + k);
      });
      if (good.length === 0) return;
      const bytesOf = (i: number): Buffer => (decoded[i - first] as PromiseFulfilledResult<Buffer>).value;
      for (const i of good) this.inflight.get(i)?.resolveVerified(bytesOf(i));
      let newBytes = 0;
      for (const i of good) newBytes += roundUp(bytesOf(i).length);
      await this.host.reserve(this, newBytes);
      // Contiguous good frames go down in one pwritev.
      const written: number[] = [];
      try {
        let k = 0;
        while (k < good.length) {
          let m = k;
          while (m + 1 < good.length && good[m + 1] === (good[m] as number) + 1) m++;
          const run = good.slice(k, m + 1);
          await pwritev(this.dataFd, run.map(bytesOf), (this.frames[run[0] as number] as FrameEntry).uncompressedOffset);
          written.push(...run);
          k = m + 1;
        }
        await this.groupSync.sync();
      } catch (err) {
        const e = cacheIoError(err, `store frames ${first}-${last}`, { blob: this.blobId, path: this.host.dir });
        this.log.error({ err: e.message }, 'cannot store fetched frames');
        for (const i of good) this.settle(i, job, e);
        return;
      } finally {
        // Failed writes may still have allocated blocks: count what was written either way.
        for (const i of written) this.allocatedBytes += roundUp(bytesOf(i).length);
        this.host.release(newBytes);
      }
      for (const i of written) this.bits.set(i);
      this.scheduleMapWrite();
      for (const i of written) this.settle(i, job);
    } catch (err) {
      const e = err instanceof OndemandError ? err : new CacheError(`fetching frames ${first}-${last} failed: ${errorText(err)}`, { blob: this.blobId }, { cause: err });
      for (let i = first; i <= last; i++) this.settle(i, job, e);
    } finally {
      this.active--;
    }
  }

  private frameRange(a: number, b: number): number[] {
    const out: number[] = [];
    for (let i = a; i <= b; i++) out.push(i);
    return out;
  }

  // ---- verification and the map ----

  /** Re-verifies frames from the data file: 'present' checks set bits, 'all' rebuilds the map. */
  private async reverify(which: 'present' | 'all'): Promise<void> {
    let cleared = 0;
    let found = 0;
    for (let i = 0; i < this.frames.length; i++) {
      if (which === 'present' && !this.bits.has(i)) continue;
      const f = this.frames[i] as FrameEntry;
      if (which === 'all') {
        // A frame lying entirely in a hole was never written: skip reading zeros.
        const data = seekData(this.dataFd, f.uncompressedOffset);
        if (data === null || data >= f.uncompressedOffset + f.uncompressedSize) {
          if (this.bits.has(i)) cleared++;
          this.bits.clear(i);
          continue;
        }
      }
      const bytes = await pread(this.dataFd, f.uncompressedSize, f.uncompressedOffset);
      const ok = bytes.length === f.uncompressedSize && (await sha256Hex(bytes, this.host.tuning.hash)) === f.digest;
      if (ok) {
        if (!this.bits.has(i)) found++;
        this.bits.set(i);
      } else if (this.bits.has(i)) {
        this.bits.clear(i);
        cleared++;
      }
    }
    // Bits found by re-verification must name durable bytes before the map says so.
    if (found > 0) await fdatasyncAsync(this.dataFd);
    if (cleared > 0 || found > 0) this.log.warn({ cleared, found, present: this.bits.count }, 'presence map repaired');
  }

  private identity(): MapIdentity {
    return { blobId: this.blobId, size: this.size, frameSize: this.frameSize, frameCount: this.frames.length };
  }

  private scheduleMapWrite(): void {
    this.mapDirty = true;
    if (!this.mapWrite) this.mapWrite = this.mapWriter();
  }

  private async mapWriter(): Promise<void> {
    try {
      while (this.mapDirty) {
        this.mapDirty = false;
        await this.writeMapAt0(MAP_FLAG_OPEN);
      }
    } catch (err) {
      // The bits in memory stay right; the persisted map only lags (frames get re-fetched after a crash).
      this.log.warn({ err: errorText(err) }, 'cannot write presence map');
    } finally {
      this.mapWrite = null;
    }
  }

  private writeMapAt0(flags: number): Promise<void> {
    const buf = encodeMap(this.identity(), this.bits, this.lastUsed, flags);
    this.lastUsedPersisted = this.lastUsed;
    return pwritev(this.mapFd, [buf], 0);
  }

  private async flushMap(): Promise<void> {
    while (this.mapWrite) await this.mapWrite;
  }

  /** Persists the last-use time if it moved (cheap: one small pwrite, no sync). */
  async persistLastUsed(): Promise<void> {
    if (this.closing || this.lastUsed === this.lastUsedPersisted) return;
    this.scheduleMapWrite();
    await this.flushMap();
  }

  // ---- eviction and close ----

  /** True when eviction may drop this blob's data now. */
  evictable(): boolean {
    return this.pins === 0 && this.active === 0 && this.prefetching === 0 && this.gate === null && !this.closing;
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
      await this.flushMap();
      this.bits.clearAll();
      await this.writeMapAt0(MAP_FLAG_OPEN);
      await fdatasyncAsync(this.mapFd);
      await ftruncateAsync(this.dataFd, 0);
      await ftruncateAsync(this.dataFd, this.size);
      this.allocatedBytes = fstatSync(this.dataFd).blocks * 512 + roundUp(mapFileSize(this.frames.length));
    } finally {
      this.gate = null;
      this.shared?.endChange();
      open();
    }
    return before - this.allocatedBytes;
  }

  /** Waits for running work, writes the map with the clean flag, and closes the files. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.shared?.retire();
    while (this.active > 0 || this.inflight.size > 0) await new Promise((r) => setTimeout(r, 5));
    await this.flushMap();
    try {
      await this.writeMapAt0(0);
      await fdatasyncAsync(this.mapFd);
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'cannot write presence map on close');
    }
    closeSync(this.dataFd);
    closeSync(this.mapFd);
  }
}

function ftruncateAsync(fd: number, len: number): Promise<void> {
  return new Promise((resolve, reject) => ftruncate(fd, len, (err) => (err ? reject(err) : resolve())));
}

/** The whole file behind `fd`, read with pread (stops early if it shrank). */
export function readWhole(fd: number): Buffer {
  const size = fstatSync(fd).size;
  const buf = Buffer.alloc(size);
  let done = 0;
  while (done < size) {
    const n = readSync(fd, buf, done, size - done, done);
    if (n === 0) break;
    done += n;
  }
  return buf.subarray(0, done);
}

/** A CacheError for a failed file operation, naming ENOSPC/EIO plainly. */
export function cacheIoError(err: unknown, what: string, ctx: { blob?: string; path?: string }): CacheError {
  const code = systemCode(err);
  if (code === 'ENOSPC') {
    return new CacheError(`cache disk full (ENOSPC): cannot ${what} in ${ctx.path ?? 'the cache directory'}`, ctx, { cause: err, errno: 28 });
  }
  if (code === 'EDQUOT') {
    return new CacheError(`cache disk quota exceeded (EDQUOT): cannot ${what}`, ctx, { cause: err, errno: 122 });
  }
  return new CacheError(`cannot ${what}: ${errorText(err)}${code ? ` (${code})` : ''}`, ctx, { cause: err });
}
