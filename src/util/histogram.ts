/**
 * Durations counted into fixed buckets (ms), the shape the cache's wait histogram already has: kept
 * by whoever times something, read by `status` and turned into a Prometheus histogram by the daemon.
 */

export interface MsHistogram {
  /** Upper bounds (ms) of the buckets; counts has one more entry, the open-ended last bucket. */
  boundsMs: number[];
  /** Per bucket (not cumulative). */
  counts: number[];
  totalMs: number;
}

export function emptyHistogram(boundsMs: readonly number[]): MsHistogram {
  return { boundsMs: [...boundsMs], counts: new Array<number>(boundsMs.length + 1).fill(0), totalMs: 0 };
}

export function observeMs(h: MsHistogram, ms: number): void {
  let i = 0;
  while (i < h.boundsMs.length && ms > (h.boundsMs[i] as number)) i++;
  h.counts[i] = (h.counts[i] ?? 0) + 1;
  h.totalMs += ms;
}

/** `now` minus `base` bucket by bucket (the same bounds): what happened since `base` was taken. */
export function histogramDelta(now: MsHistogram, base: MsHistogram | undefined): MsHistogram {
  return {
    boundsMs: [...now.boundsMs],
    counts: now.counts.map((c, i) => c - (base?.counts[i] ?? 0)),
    totalMs: now.totalMs - (base?.totalMs ?? 0),
  };
}

/** Sums histograms with the same bounds into `into`. */
export function addHistogram(into: MsHistogram, h: MsHistogram): void {
  h.counts.forEach((c, i) => (into.counts[i] = (into.counts[i] ?? 0) + c));
  into.totalMs += h.totalMs;
}
