/** Counters and the wait-time histogram kept per blob and summed for the whole cache. */
import type { BlobStats, WaitHistogram } from './types.js';

/** Upper bounds (ms) of the wait-time buckets; the last bucket is open-ended. */
export const WAIT_BUCKETS_MS: readonly number[] = [0.1, 0.5, 1, 5, 10, 50, 100, 500, 1000, 5000];

export class StatsCounter {
  hits = 0;
  misses = 0;
  bytesFetched = 0;
  requestsFetched = 0;
  mergedRequests = 0;
  integrityErrors = 0;
  fetchErrors = 0;
  failedReads = 0;
  /** The part of bytesFetched/requestsFetched that background prefetch asked for (the rest: reads and their read-ahead). */
  prefetchBytesFetched = 0;
  prefetchRequestsFetched = 0;
  readonly waitCounts: number[] = new Array<number>(WAIT_BUCKETS_MS.length + 1).fill(0);
  waitTotalMs = 0;

  recordWait(ms: number): void {
    let i = 0;
    while (i < WAIT_BUCKETS_MS.length && ms > (WAIT_BUCKETS_MS[i] as number)) i++;
    this.waitCounts[i] = (this.waitCounts[i] as number) + 1;
    this.waitTotalMs += ms;
  }

  histogram(): WaitHistogram {
    return { boundsMs: [...WAIT_BUCKETS_MS], counts: [...this.waitCounts], totalMs: this.waitTotalMs };
  }

  snapshot(framesPresent: number, framesTotal: number): BlobStats {
    return {
      hits: this.hits,
      misses: this.misses,
      bytesFetched: this.bytesFetched,
      requestsFetched: this.requestsFetched,
      mergedRequests: this.mergedRequests,
      framesPresent,
      framesTotal,
      integrityErrors: this.integrityErrors,
      fetchErrors: this.fetchErrors,
      failedReads: this.failedReads,
      prefetchBytesFetched: this.prefetchBytesFetched,
      prefetchRequestsFetched: this.prefetchRequestsFetched,
      waitHistogram: this.histogram(),
    };
  }
}

/** Sums blob stats (for the cache-wide view). */
export function sumStats(all: BlobStats[]): BlobStats {
  const total: BlobStats = {
    hits: 0, misses: 0, bytesFetched: 0, requestsFetched: 0, mergedRequests: 0, framesPresent: 0, framesTotal: 0,
    integrityErrors: 0, fetchErrors: 0, failedReads: 0, prefetchBytesFetched: 0, prefetchRequestsFetched: 0,
    waitHistogram: { boundsMs: [...WAIT_BUCKETS_MS], counts: new Array<number>(WAIT_BUCKETS_MS.length + 1).fill(0), totalMs: 0 },
  };
  for (const s of all) {
    total.hits += s.hits;
    total.misses += s.misses;
    total.bytesFetched += s.bytesFetched;
    total.requestsFetched += s.requestsFetched;
    total.mergedRequests += s.mergedRequests;
    total.framesPresent += s.framesPresent;
    total.framesTotal += s.framesTotal;
    total.integrityErrors = (total.integrityErrors ?? 0) + (s.integrityErrors ?? 0);
    total.fetchErrors = (total.fetchErrors ?? 0) + (s.fetchErrors ?? 0);
    total.failedReads = (total.failedReads ?? 0) + (s.failedReads ?? 0);
    total.prefetchBytesFetched = (total.prefetchBytesFetched ?? 0) + (s.prefetchBytesFetched ?? 0);
    total.prefetchRequestsFetched = (total.prefetchRequestsFetched ?? 0) + (s.prefetchRequestsFetched ?? 0);
    const h = s.waitHistogram;
    const th = total.waitHistogram;
    if (h && th) {
      h.counts.forEach((c, i) => (th.counts[i] = (th.counts[i] ?? 0) + c));
      th.totalMs += h.totalMs;
    }
  }
  return total;
}
