/**
 * Per-operation latencies of the bench's reading processes, counted into log-linear buckets (64 per
 * power of two: within 1.1 % of the true value), so several processes' counts merge and travel as
 * small JSON. Values are in nanoseconds.
 */

const SUB = 64;

/** Bucket index → count (only the buckets used). */
export type LatencyCounts = Record<string, number>;

export function bucketOf(ns: number): number {
  if (ns < SUB) return Math.max(0, Math.floor(ns));
  const exp = Math.floor(Math.log2(ns));
  const sub = Math.floor((ns / 2 ** exp - 1) * SUB);
  return SUB + (exp - 6) * SUB + sub;
}

/** The middle of bucket `b` (ns). */
export function valueOf(b: number): number {
  if (b < SUB) return b;
  const exp = Math.floor((b - SUB) / SUB) + 6;
  const sub = (b - SUB) % SUB;
  return 2 ** exp * (1 + (sub + 0.5) / SUB);
}

export function record(counts: LatencyCounts, ns: number): void {
  const b = String(bucketOf(ns));
  counts[b] = (counts[b] ?? 0) + 1;
}

export function merge(into: LatencyCounts, from: LatencyCounts): void {
  for (const [b, n] of Object.entries(from)) into[b] = (into[b] ?? 0) + n;
}

/** The q-quantile (0..1) in ns, or null without any value. */
export function quantile(counts: LatencyCounts, q: number): number | null {
  const buckets = Object.entries(counts).map(([b, n]) => [Number(b), n] as const).sort((a, b) => a[0] - b[0]);
  const total = buckets.reduce((s, [, n]) => s + n, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [b, n] of buckets) {
    seen += n;
    if (seen >= rank) return valueOf(b);
  }
  return valueOf(buckets[buckets.length - 1]![0]);
}
