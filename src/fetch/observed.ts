/**
 * A fetcher that times the range requests of another: their latency, failures, and which are still
 * running (and for how long, so a hung registry shows as requests stuck in flight). Only image data
 * (ranges) is timed; a cache hit never gets here, so reads served from the cache pay nothing.
 */
import { emptyHistogram, observeMs, type MsHistogram } from '../util/histogram.js';
import type { BlobFetcher, ByteRange, FetchOptions } from './types.js';

/** Upper bounds (ms) of the fetch-latency buckets: a local file is sub-ms, a far registry seconds. */
export const FETCH_BUCKETS_MS: readonly number[] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];

export interface FetchFigures {
  /** Range requests (a fetchRanges call counts as one) that succeeded. */
  requests: number;
  failed: number;
  inFlight: number;
  /** In flight for longer than the threshold asked for (hung I/O). */
  stalled: number;
  /** Age of the oldest request in flight (0: none). */
  oldestInFlightMs: number;
  /** Latency of the requests that succeeded (retries included: what the waiting read saw). */
  latency: MsHistogram;
}

export class ObservedFetcher implements BlobFetcher {
  readonly source: string;
  readonly readAheadRequestBytes?: number;
  readonly fetchRanges?: (digest: string, ranges: ByteRange[], options?: FetchOptions) => Promise<Buffer[]>;
  private readonly latency = emptyHistogram(FETCH_BUCKETS_MS);
  private requests = 0;
  private failed = 0;
  /** Start time of each request in flight, by a number of its own. */
  private readonly running = new Map<number, number>();
  private next = 0;

  constructor(private readonly inner: BlobFetcher, private readonly now: () => number = () => performance.now()) {
    this.source = inner.source;
    if (inner.readAheadRequestBytes !== undefined) this.readAheadRequestBytes = inner.readAheadRequestBytes;
    const ranges = inner.fetchRanges?.bind(inner);
    if (ranges) this.fetchRanges = (digest, r, options) => this.timed(() => ranges(digest, r, options));
  }

  fetchRange(digest: string, range: ByteRange, options?: FetchOptions): Promise<Buffer> {
    return this.timed(() => this.inner.fetchRange(digest, range, options));
  }

  fetchBlob(digest: string, options?: FetchOptions): Promise<Buffer> {
    return this.inner.fetchBlob(digest, options);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async timed<T>(fetch: () => Promise<T>): Promise<T> {
    const id = this.next++;
    const started = this.now();
    this.running.set(id, started);
    try {
      const result = await fetch();
      this.requests++;
      observeMs(this.latency, this.now() - started);
      return result;
    } catch (err) {
      this.failed++;
      throw err;
    } finally {
      this.running.delete(id);
    }
  }

  figures(stalledAfterMs: number): FetchFigures {
    const now = this.now();
    let stalled = 0;
    let oldest = 0;
    for (const started of this.running.values()) {
      const age = now - started;
      if (age > stalledAfterMs) stalled++;
      oldest = Math.max(oldest, age);
    }
    return {
      requests: this.requests, failed: this.failed, inFlight: this.running.size, stalled, oldestInFlightMs: Math.round(oldest),
      latency: { boundsMs: [...this.latency.boundsMs], counts: [...this.latency.counts], totalMs: this.latency.totalMs },
    };
  }
}
