/**
 * The fetch jobs of one blob and its in-flight table. A job covers frames first..last: it waits for a
 * fetch slot, makes one range request, decodes and verifies each frame against the TOC (waiting
 * readers get the bytes now), reserves space, writes, fdatasyncs (group commit) and only then sets
 * the bits. Every frame has one FrameWait shared by all its readers (single flight); a failure rejects
 * it with a typed error and drops it from the table, so the next read fetches again.
 *
 * Frames the map claimed but this process has not verified (blob-open.ts: `unverified`) are in the
 * table from the start, as verify jobs: read back from the data file and hashed one after another in
 * the background, or at once when a reader waits for one (promote). A frame that verifies becomes
 * present without a fetch; one that does not is fetched like any missing frame.
 */
import type { BlobDescriptor, BlobToc, FrameEntry } from '../format/image/types.js';
import type { BlobFetcher } from '../fetch/types.js';
import { CacheError, FetchError, IntegrityError, OndemandError, errorText } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { FrameStates } from './fetch-plan.js';
import { cacheIoError, GroupSync, pread, pwritev, roundUpToBlock } from './file-io.js';
import { decodeFrame, sha256Hex, type HashMode } from '../format/image/frames.js';
import type { PresenceBits } from './presence-map.js';
import type { FetchSlots, Priority } from './scheduler.js';
import type { StatsCounter } from './stats.js';

/** Where frames come from; replaced whole when another opener brings a fresh fetcher. */
export interface BlobSource {
  descriptor: BlobDescriptor;
  fetcher: BlobFetcher;
  toc: BlobToc;
  /** The image the opener named (for logs: a blob may belong to several). */
  image?: string;
}

export interface FrameWait {
  /** Settles when the frame is present (durable + verified) or has failed. */
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
  /** Settles with the frame's bytes as soon as they are verified (before they are durable). */
  verified: Promise<Buffer>;
  resolveVerified: (bytes: Buffer) => void;
  rejectVerified: (err: Error) => void;
  /** Settles once the verified bytes are in the data file (written, maybe not yet durable). */
  written: Promise<void>;
  resolveWritten: () => void;
  rejectWritten: (err: Error) => void;
  job: FetchJob;
}

interface FetchJob {
  first: number;
  last: number;
  priority: Priority;
  promote: () => void;
  /** The source the job was planned against (its stored offsets). */
  source: BlobSource;
  /** A verify job (one frame): read back from the data file first; fetched only if that fails. */
  verify: boolean;
  /** Running (verify jobs wait in the queue until their turn or a reader's promote). */
  started: boolean;
}

/** What jobs need from their blob and its cache. */
export interface JobEnv {
  readonly blobId: string;
  readonly dir: string;
  readonly dataFd: number;
  readonly bits: PresenceBits;
  /** Frames claimed by the map, not yet verified in this process (never in `bits`). */
  readonly unverified: PresenceBits;
  readonly counters: StatsCounter;
  readonly slots: FetchSlots;
  readonly hash: HashMode;
  readonly log: Logger;
  /** Before writing `bytes` new bytes (may evict other blobs); `release` once counted or failed. */
  reserve(bytes: number): Promise<void>;
  release(bytes: number): void;
  /** `bytes` more are allocated in the data file (counted even when a later write fails). */
  allocated(bytes: number): void;
  /** Bits were set: the map is due a rewrite. */
  marked(): void;
  /** Frame i's verified bytes are in the data file (not yet durable): other threads may read them. */
  wrote(i: number): void;
  /** Frame i's bytes in the data file are no longer known good (the file changed behind the cache). */
  unwrote(i: number): void;
  /** Frame i's stored bytes failed re-verification (it is fetched again). */
  reverifyFailed?(i: number): void;
}

export class FetchJobs implements FrameStates {
  /** Where new jobs fetch from. */
  source: BlobSource;
  /** Jobs started and not finished (waiting for a slot, fetching or storing). */
  running = 0;
  private readonly inflight = new Map<number, FrameWait>();
  private readonly groupSync: GroupSync;
  /** Verify jobs in frame order, run one at a time by pumpVerify. */
  private verifyQueue: FetchJob[] = [];
  /**
   * One fdatasync before the first re-verified bit is set: bytes a replaced data file brought may not
   * be durable yet, and a bit must name durable bytes. One for all frames, not one per frame.
   */
  private storedDurable: Promise<void> | null = null;
  /**
   * Bumped when the data file changed behind the cache's back (distrust()): a frame stored or
   * re-verified across a bump may have been read or overwritten around the change, so it lands
   * unverified (and is verified again) instead of present.
   */
  private era = 0;
  /** pumpVerify is running (one at a time: frames are verified in order, one after another). */
  private pumping = false;

  constructor(private readonly env: JobEnv, source: BlobSource) {
    this.source = source;
    this.groupSync = new GroupSync(env.dataFd);
  }

  get frames(): readonly FrameEntry[] {
    return this.source.toc.frames;
  }

  present(i: number): boolean {
    return this.env.bits.has(i);
  }

  inFlight(i: number): boolean {
    return this.inflight.has(i);
  }

  /** The wait of frame i while it is in flight. */
  wait(i: number): FrameWait | undefined {
    return this.inflight.get(i);
  }

  /** A reader waits for frame i: a queued prefetch job fetching it becomes demand; a queued verify job runs now. */
  promote(i: number): void {
    const job = this.inflight.get(i)?.job;
    if (job?.verify && !job.started) {
      job.priority = 'demand';
      this.launch(job);
    } else job?.promote();
  }

  /** Frames in flight. */
  get pending(): number {
    return this.inflight.size;
  }

  /** Resolves when no frame is in flight. */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) {
      const first = this.inflight.values().next().value as FrameWait;
      await first.promise.catch(() => {});
    }
  }

  /** Puts frames first..last in flight (none may be) and runs one job for them. */
  start(first: number, last: number, priority: Priority): void {
    const job: FetchJob = { first, last, priority, promote: () => {}, source: this.source, verify: false, started: false };
    for (let i = first; i <= last; i++) this.track(i, job);
    this.launch(job);
  }

  /**
   * Puts every unverified frame in flight as a verify job and starts verifying them in the background.
   * Until then no reader can take them for present: readers join their jobs instead.
   */
  startVerify(): void {
    for (const i of this.env.unverified.present()) {
      if (this.inflight.has(i)) continue;
      const job: FetchJob = { first: i, last: i, priority: 'prefetch', promote: () => {}, source: this.source, verify: true, started: false };
      this.track(i, job);
      this.verifyQueue.push(job);
    }
    if (this.verifyQueue.length > 0) void this.pumpVerify();
  }

  /**
   * The data file changed behind the cache's back: every present frame becomes unverified (readers
   * join their verify jobs) and frames landing from jobs already running do too.
   */
  distrust(): void {
    this.era += 1;
    this.storedDurable = null;
    for (const i of this.env.bits.present()) this.env.unverified.set(i);
    this.env.bits.clearAll();
    this.startVerify();
  }

  /** Frames that landed across a distrust(): unverified, and verified again. */
  private landedAcrossChange(frames: readonly number[]): void {
    for (const i of frames) {
      this.env.unwrote(i);
      this.env.unverified.set(i);
    }
    this.startVerify();
  }

  /**
   * Drops the verify jobs not started (the blob is closing): their frames stay unverified, and the
   * map keeps them for the next open to verify.
   */
  cancelVerify(err: Error): void {
    const queued = this.verifyQueue;
    this.verifyQueue = [];
    for (const job of queued) if (!job.started) this.settle(job.first, job, err);
  }

  private async pumpVerify(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.verifyQueue.length > 0) {
        const job = this.verifyQueue.shift() as FetchJob;
        if (job.started || this.inflight.get(job.first)?.job !== job) continue;
        job.started = true;
        await this.run(job);
      }
    } finally {
      this.pumping = false;
    }
  }

  private launch(job: FetchJob): void {
    job.started = true;
    void this.run(job);
  }

  private track(i: number, job: FetchJob): void {
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
    let resolveWritten!: () => void;
    let rejectWritten!: (err: Error) => void;
    const written = new Promise<void>((res, rej) => {
      resolveWritten = res;
      rejectWritten = rej;
    });
    promise.catch(() => {}); // read-ahead frames may have no waiter
    verified.catch(() => {});
    written.catch(() => {});
    this.inflight.set(i, { promise, resolve, reject, verified, resolveVerified, rejectVerified, written, resolveWritten, rejectWritten, job });
  }

  private settle(i: number, job: FetchJob, err?: Error): void {
    const w = this.inflight.get(i);
    if (!w || w.job !== job) return;
    this.inflight.delete(i);
    if (err) {
      w.rejectVerified(err);
      w.rejectWritten(err);
      w.reject(err);
    } else {
      w.resolveWritten();
      w.resolve();
    }
  }

  private async run(job: FetchJob): Promise<void> {
    const { first, last } = job;
    const env = this.env;
    this.running++;
    try {
      if (job.verify) {
        if (await this.verifyStored(job)) return;
        job.verify = false; // dropped: fetched like any missing frame
      }
      const ticket = env.slots.acquire(job.priority);
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
        env.counters.fetchErrors++;
        const e = err instanceof OndemandError
          ? err
          : new FetchError(`fetching frames ${first}-${last} failed: ${errorText(err)}`, { blob: descriptor.digest, offset, length }, { cause: err });
        for (let i = first; i <= last; i++) this.settle(i, job, e);
        return;
      } finally {
        env.slots.release();
      }
      env.counters.requestsFetched++;
      env.counters.bytesFetched += length;
      if (last > first) env.counters.mergedRequests++;

      await this.store(job, stored, offset);
    } catch (err) {
      const e = err instanceof OndemandError ? err : new CacheError(`fetching frames ${first}-${last} failed: ${errorText(err)}`, { blob: env.blobId }, { cause: err });
      for (let i = first; i <= last; i++) this.settle(i, job, e);
    } finally {
      this.running--;
    }
  }

  /**
   * A verify job: reads its frame back from the data file and checks it against the TOC. True when the
   * frame is settled (present, or failed to sync); false when its bytes are wrong (to be fetched).
   */
  private async verifyStored(job: FetchJob): Promise<boolean> {
    const env = this.env;
    const i = job.first;
    const f = job.source.toc.frames[i] as FrameEntry;
    let era: number;
    let bytes: Buffer | undefined;
    let ok: boolean;
    // Read again when the file changed while this read and hash ran.
    do {
      era = this.era;
      bytes = await pread(env.dataFd, f.uncompressedSize, f.uncompressedOffset).catch(() => undefined);
      ok = bytes !== undefined && bytes.length === f.uncompressedSize && (await sha256Hex(bytes, env.hash)) === f.digest;
    } while (ok && era !== this.era);
    if (!ok || bytes === undefined) {
      env.unverified.clear(i);
      env.reverifyFailed?.(i);
      env.log.warn({ frame: i, offset: f.uncompressedOffset }, 'cached frame failed re-verification; fetching it again');
      return false;
    }
    this.inflight.get(i)?.resolveVerified(bytes);
    env.wrote(i);
    this.inflight.get(i)?.resolveWritten();
    try {
      this.storedDurable ??= this.groupSync.sync();
      await this.storedDurable;
    } catch (err) {
      this.storedDurable = null;
      this.settle(i, job, cacheIoError(err, `re-verify frame ${i}`, { blob: env.blobId, path: env.dir }));
      return true;
    }
    if (era !== this.era) {
      this.settle(i, job);
      this.landedAcrossChange([i]);
      return true;
    }
    env.bits.set(i);
    env.unverified.clear(i);
    env.marked();
    this.settle(i, job);
    return true;
  }

  /**
   * Decodes and verifies the job's frames one by one, each written as soon as it verifies (its pwrite
   * runs in the threadpool while the next frame is hashed), then makes them durable with one group
   * commit and only then marks them present. A frame that fails verification is dropped alone.
   */
  private async store(job: FetchJob, stored: Buffer, storedOffset: number): Promise<void> {
    const env = this.env;
    const frames = job.source.toc.frames;
    let newBytes = 0;
    for (let i = job.first; i <= job.last; i++) newBytes += roundUpToBlock((frames[i] as FrameEntry).uncompressedSize);
    await env.reserve(newBytes);
    const era = this.era;
    const decode = (i: number): Promise<Buffer> => {
      const f = frames[i] as FrameEntry;
      const at = f.compressedOffset - storedOffset;
      return decodeFrame(stored.subarray(at, at + f.compressedSize), f, job.source.toc, { blob: env.blobId, index: i }, env.hash);
    };
    // Compressed frames decompress in the threadpool side by side; uncompressed ones are hashed on
    // the event loop one at a time, so each one's write is under way while the next is hashed.
    const decoding = job.source.toc.compression === 'none' ? [] : Array.from({ length: job.last - job.first + 1 }, (_, k) => decode(job.first + k));
    for (const d of decoding) d.catch(() => {});
    const written: number[] = [];
    const writes: Promise<void>[] = [];
    let writeError: Error | undefined;
    // Bytes of the writes that went down (as before the pipeline: a failed write's blocks are not counted).
    let allocated = 0;
    try {
      for (let i = job.first; i <= job.last; i++) {
        const f = frames[i] as FrameEntry;
        let bytes: Buffer;
        try {
          bytes = await (decoding[i - job.first] ?? decode(i));
        } catch (err) {
          env.counters.integrityErrors++;
          const e = err instanceof Error ? err : new IntegrityError(String(err), { blob: env.blobId });
          env.log.warn({ frame: i, err: errorText(e) }, 'fetched frame failed verification; not cached');
          this.settle(i, job, e);
          continue;
        }
        this.inflight.get(i)?.resolveVerified(bytes);
        // Handled at once (never rejects): the loop goes on hashing while the write runs.
        writes.push(pwritev(env.dataFd, [bytes], f.uncompressedOffset).then(() => {
          allocated += roundUpToBlock(bytes.length);
          written.push(i);
          env.wrote(i);
          this.inflight.get(i)?.resolveWritten();
        }, (err: unknown) => {
          writeError ??= err instanceof Error ? err : new Error(String(err));
        }));
      }
      await Promise.all(writes);
      if (writeError !== undefined) throw writeError;
      if (written.length === 0) return;
      await this.groupSync.sync();
    } catch (err) {
      await Promise.all(writes);
      const e = cacheIoError(err, `store frames ${job.first}-${job.last}`, { blob: env.blobId, path: env.dir });
      env.log.error({ err: e.message }, 'cannot store fetched frames');
      for (let i = job.first; i <= job.last; i++) this.settle(i, job, e);
      return;
    } finally {
      env.allocated(allocated);
      env.release(newBytes);
    }
    if (era !== this.era) {
      for (const i of written) this.settle(i, job);
      this.landedAcrossChange(written);
      return;
    }
    for (const i of written) {
      env.bits.set(i);
      env.unverified.clear(i);
    }
    env.marked();
    for (const i of written) this.settle(i, job);
  }
}
