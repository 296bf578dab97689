/**
 * Prefetch of one blob: workers walk the missing frames in priority order (the given ranges, then the
 * whole blob unless rangesOnly), each taking the next run of missing frames not in flight (merged up
 * to the cap) and waiting on the bandwidth throttle before starting its job, so throttling never
 * holds a fetch slot. A worker takes its next run once the last one is written, not durable. Fetch failures do not stop it: it rejects with the first error at the end.
 */
import type { CacheClock } from './clock.js';
import type { FetchJobs, FrameWait } from './fetch-jobs.js';
import { missingSteps, runEnd, storedBytes, type PlanInput } from './fetch-plan.js';
import { Throttle } from './scheduler.js';
import type { PrefetchOptions } from './types.js';

/** The blob a prefetch runs on. */
export interface PrefetchTarget {
  readonly size: number;
  readonly frameSize: number;
  readonly jobs: FetchJobs;
  readonly maxMergeBytes: number;
  /** Workers (requests in flight) per prefetch. */
  readonly concurrency: number;
  /** The cache's shared default throttle (undefined when uncapped). */
  readonly throttle: Throttle | undefined;
  readonly clock: CacheClock;
  /** True once the blob is closing: workers stop taking runs. */
  closing(): boolean;
  /** Counts the blob as busy while `p` runs. */
  busy<T>(p: Promise<T>): Promise<T>;
  /** A range request this prefetch started brought its `bytes` (stored) and they are written: for the stats' prefetch share. */
  fetched?(bytes: number): void;
}

/** Frame spans to walk, in priority order. */
function walkOrder(t: PrefetchTarget, frameCount: number, options: PrefetchOptions): [number, number][] {
  const order: [number, number][] = [];
  for (const r of options.ranges ?? []) {
    const end = Math.min(t.size, r.offset + r.length);
    if (r.offset < end) order.push([Math.floor(r.offset / t.frameSize), Math.floor((end - 1) / t.frameSize)]);
  }
  if (!options.rangesOnly && frameCount > 0) order.push([0, frameCount - 1]);
  return order;
}

export async function prefetchFrames(t: PrefetchTarget, options: PrefetchOptions): Promise<void> {
  const jobs = t.jobs;
  const throttle = options.budget ?? (options.bytesPerSecond ? new Throttle(options.bytesPerSecond, t.clock) : t.throttle);
  const plan = (): PlanInput => ({ frames: jobs.frames, states: jobs, maxMergeBytes: t.maxMergeBytes });
  const order = walkOrder(t, jobs.frames.length, options);
  let rangeIndex = 0;
  let cursor = order[0]?.[0] ?? 0;
  const errors: Error[] = [];
  const waited: Promise<void>[] = [];
  // Next run of missing frames not yet in flight, in priority order.
  const nextRun = (): [number, number] | undefined => {
    while (rangeIndex < order.length) {
      const [, last] = order[rangeIndex] as [number, number];
      while (cursor <= last && (jobs.present(cursor) || jobs.inFlight(cursor))) {
        const w = jobs.wait(cursor);
        if (w) waited.push(w.promise);
        cursor++;
      }
      if (cursor <= last) {
        const a = cursor;
        const b = runEnd(plan(), a, last);
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
      if (t.closing()) return;
      const run = nextRun();
      if (!run) return;
      const [a, b] = run;
      if (throttle) await throttle.take(storedBytes(jobs.frames, a, b), options.signal);
      // The blob may have closed while this worker waited: its files are gone (or their fds reused).
      if (t.closing()) return;
      // Frames may have arrived (or started) while throttled: take only what is still missing.
      // The worker moves on once its frames are written; their group commit (and the bits) follow
      // while it fetches the next run, and the prefetch ends only when all are durable.
      const writes: Promise<void>[] = [];
      for (const step of missingSteps(plan(), a, b)) {
        if (step.kind === 'fetch') jobs.start(step.first, step.last, 'prefetch');
        const [from, to] = step.kind === 'fetch' ? [step.first, step.last] : [step.frame, step.frame];
        const stepWrites: Promise<void>[] = [];
        for (let k = from; k <= to; k++) {
          const w = jobs.wait(k) as FrameWait;
          stepWrites.push(w.written);
          waited.push(w.promise);
        }
        writes.push(...stepWrites);
        // Counted here, not in the job (which does not know who started it): one request per job this
        // prefetch started, once all its frames are written (a failed one is not counted).
        if (step.kind === 'fetch' && t.fetched) {
          const bytes = storedBytes(jobs.frames, step.first, step.last);
          const fetched = t.fetched.bind(t);
          void Promise.all(stepWrites).then(() => fetched(bytes), () => undefined);
        }
      }
      await t.busy(Promise.allSettled(writes));
    }
  };
  const workers = Array.from({ length: Math.max(1, t.concurrency) }, () => worker());
  const settled = await Promise.allSettled(workers);
  for (const r of settled) if (r.status === 'rejected') throw r.reason;
  for (const r of await Promise.allSettled(waited)) if (r.status === 'rejected') errors.push(r.reason as Error);
  if (errors.length > 0) throw errors[0];
}
