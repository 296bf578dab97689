/**
 * The fetch jobs of one blob and its in-flight table. A job covers frames first..last: it waits for a
 * fetch slot, makes one range request, decodes and verifies each frame against the TOC (waiting
 * readers get the bytes now), reserves space, writes, fdatasyncs (group commit) and only then sets
 * the bits. Every frame has one FrameWait shared by all its readers (single flight); a failure rejects
 * it with a typed error and drops it from the table, so the next read fetches again.
 */
import type { BlobDescriptor, BlobToc, FrameEntry } from '../format/image/types.js';
import type { BlobFetcher } from '../fetch/types.js';
import { CacheError, FetchError, IntegrityError, OndemandError, errorText } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { FrameStates } from './fetch-plan.js';
import { cacheIoError, GroupSync, pwritev, roundUpToBlock } from './file-io.js';
import { decodeFrame, type HashMode } from './frame-codec.js';
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
  job: FetchJob;
}

interface FetchJob {
  first: number;
  last: number;
  priority: Priority;
  promote: () => void;
  /** The source the job was planned against (its stored offsets). */
  source: BlobSource;
}

/** What jobs need from their blob and its cache. */
export interface JobEnv {
  readonly blobId: string;
  readonly dir: string;
  readonly dataFd: number;
  readonly bits: PresenceBits;
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
}

export class FetchJobs implements FrameStates {
  /** Where new jobs fetch from. */
  source: BlobSource;
  /** Jobs started and not finished (waiting for a slot, fetching or storing). */
  running = 0;
  private readonly inflight = new Map<number, FrameWait>();
  private readonly groupSync: GroupSync;

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

  /** A reader waits for frame i: a queued prefetch job fetching it becomes demand. */
  promote(i: number): void {
    this.inflight.get(i)?.job.promote();
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
    void this.run(job);
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

  private async run(job: FetchJob): Promise<void> {
    const { first, last } = job;
    const env = this.env;
    this.running++;
    try {
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

      const decoded = await Promise.allSettled(
        Array.from({ length: last - first + 1 }, (_, k) => {
          const f = frames[first + k] as FrameEntry;
          const at = f.compressedOffset - offset;
          return decodeFrame(toc, f, stored.subarray(at, at + f.compressedSize), env.hash, { blob: env.blobId, frame: first + k });
        }),
      );
      const good: number[] = [];
      decoded.forEach((r, k) => {
        if (r.status === 'rejected') {
          env.counters.integrityErrors++;
          const err = r.reason instanceof Error ? r.reason : new IntegrityError(String(r.reason), { blob: env.blobId });
          env.log.warn({ frame: first + k, err: errorText(err) }, 'fetched frame failed verification; not cached');
          this.settle(first + k, job, err);
        } else good.push(first + k);
      });
      if (good.length === 0) return;
      const bytesOf = (i: number): Buffer => (decoded[i - first] as PromiseFulfilledResult<Buffer>).value;
      for (const i of good) this.inflight.get(i)?.resolveVerified(bytesOf(i));
      await this.store(job, good, bytesOf);
    } catch (err) {
      const e = err instanceof OndemandError ? err : new CacheError(`fetching frames ${first}-${last} failed: ${errorText(err)}`, { blob: env.blobId }, { cause: err });
      for (let i = first; i <= last; i++) this.settle(i, job, e);
    } finally {
      this.running--;
    }
  }

  /** Writes verified frames, makes them durable, then marks them present. */
  private async store(job: FetchJob, good: number[], bytesOf: (i: number) => Buffer): Promise<void> {
    const env = this.env;
    let newBytes = 0;
    for (const i of good) newBytes += roundUpToBlock(bytesOf(i).length);
    await env.reserve(newBytes);
    // Contiguous good frames go down in one pwritev.
    const written: number[] = [];
    try {
      let k = 0;
      while (k < good.length) {
        let m = k;
        while (m + 1 < good.length && good[m + 1] === (good[m] as number) + 1) m++;
        const run = good.slice(k, m + 1);
        await pwritev(env.dataFd, run.map(bytesOf), (job.source.toc.frames[run[0] as number] as FrameEntry).uncompressedOffset);
        written.push(...run);
        k = m + 1;
      }
      await this.groupSync.sync();
    } catch (err) {
      const e = cacheIoError(err, `store frames ${job.first}-${job.last}`, { blob: env.blobId, path: env.dir });
      env.log.error({ err: e.message }, 'cannot store fetched frames');
      for (const i of good) this.settle(i, job, e);
      return;
    } finally {
      // Failed writes may still have allocated blocks: count what was written either way.
      let allocated = 0;
      for (const i of written) allocated += roundUpToBlock(bytesOf(i).length);
      env.allocated(allocated);
      env.release(newBytes);
    }
    for (const i of written) env.bits.set(i);
    env.marked();
    for (const i of written) this.settle(i, job);
  }
}
