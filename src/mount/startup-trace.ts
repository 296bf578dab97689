/**
 * Start-up traces: the order in which a mount's programs first read each frame in the mount's first
 * seconds, recorded once per image and kept in the cache (beside its manifest); a later cold mount of
 * the image prefetches those frames first, in that order, adjacent frames merged into large requests.
 * A trace names blobs by digest and ranges in their uncompressed views, so it can be exported
 * (`ondemand trace export`) and given to a mount on another host (`mount --prefetch-trace FILE`).
 */
import type { CachedBlob, MetadataStore } from '../cache/types.js';
import { TRACE_VERSION, parseTrace, traceFromAnnotation, type StartupTrace } from '../format/image/trace.js';
import { errorText } from '../util/errors.js';
import { logFor } from '../util/log.js';
import type { BlobRange } from './prefetch-paths.js';

/** The trace's ranges on this image's blobs (device-table indexes), in order; ranges of other blobs, or past a blob's end, are dropped. */
export function traceRanges(trace: StartupTrace, blobs: readonly CachedBlob[], digests: readonly string[]): BlobRange[] {
  const out: BlobRange[] = [];
  for (const r of trace.ranges) {
    const blob = digests.indexOf(r.blob);
    const size = blobs[blob]?.size;
    if (blob < 0 || size === undefined || r.offset >= size) continue;
    out.push({ blob, offset: r.offset, length: Math.min(r.length, size - r.offset) });
  }
  return out;
}

/**
 * Records first reads through the blobs it wraps for `seconds` after it starts: each frame once, in
 * the order of its first read (a miss the cache fetches, or a hit served by another thread).
 */
export class TraceRecorder {
  private readonly seen: Set<number>[];
  private readonly frames: { blob: number; frame: number }[] = [];
  private readonly deadline: number;

  constructor(private readonly blobs: readonly CachedBlob[], readonly seconds: number, private readonly now: () => number = Date.now) {
    this.seen = blobs.map(() => new Set<number>());
    this.deadline = now() + seconds * 1000;
  }

  get recording(): boolean {
    return this.now() < this.deadline;
  }

  /** The blobs to hand the transport: the same objects, with their reads noted. */
  wrap(): CachedBlob[] {
    return this.blobs.map((blob, i) => new Proxy(blob, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        if (prop === 'read' || prop === 'ensure' || prop === 'readElsewhere') {
          const method = value as (offset: number, length: number, ...rest: unknown[]) => unknown;
          // Every argument passed on: ensure's options ({ durable: false }) decide what it waits for.
          return (offset: number, length: number, ...rest: unknown[]): unknown => {
            this.note(i, offset, length);
            return method.call(target, offset, length, ...rest);
          };
        }
        return (value as (...args: unknown[]) => unknown).bind(target);
      },
    }));
  }

  private note(blob: number, offset: number, length: number): void {
    if (!this.recording || length <= 0) return;
    const frameSize = this.blobs[blob]!.toc.frameSize;
    const seen = this.seen[blob]!;
    for (let f = Math.floor(offset / frameSize); f <= Math.floor((offset + length - 1) / frameSize); f++) {
      if (seen.has(f)) continue;
      seen.add(f);
      this.frames.push({ blob, frame: f });
    }
  }

  /** What was recorded, adjacent frames of one blob merged; empty when nothing was read. */
  trace(manifestDigest: string, digests: readonly string[], at = new Date()): StartupTrace {
    const ranges: StartupTrace['ranges'] = [];
    let last: { blob: number; end: number } | undefined;
    for (const { blob, frame } of this.frames) {
      const b = this.blobs[blob]!;
      const offset = frame * b.toc.frameSize;
      const length = Math.min(b.toc.frameSize, b.size - offset);
      const prev = ranges[ranges.length - 1];
      if (prev && last && last.blob === blob && last.end === offset) {
        prev.length += length;
      } else {
        ranges.push({ blob: digests[blob]!, offset, length });
      }
      last = { blob, end: offset + length };
    }
    return { version: TRACE_VERSION, manifestDigest, recordedAt: at.toISOString(), seconds: this.seconds, ranges };
  }
}

/** Where a mount's trace came from: `mount --prefetch-trace`, this cache, or the image's manifest. */
export type TraceSource = 'given' | 'cache' | 'image';

/**
 * The trace to replay for a mount: the one it was given, else the one this cache recorded for its
 * manifest, else the one the image carries (`embedded`, its manifest annotation). A bad stored or
 * embedded one is ignored, logged.
 */
export async function traceFor(given: StartupTrace | undefined, metadata: MetadataStore | undefined, manifestDigest: string | undefined, image: string, embedded?: string): Promise<{ trace: StartupTrace; from: TraceSource } | undefined> {
  if (given) return { trace: given, from: 'given' };
  const bytes = manifestDigest && metadata?.trace ? await metadata.trace(manifestDigest).catch(() => undefined) : undefined;
  if (bytes) {
    try {
      return { trace: parseTrace(bytes.toString('utf8'), `stored start-up trace of ${manifestDigest}`), from: 'cache' };
    } catch (err) {
      logFor({ image }).warn({ err: errorText(err) }, 'stored start-up trace unreadable; recording a new one');
    }
  }
  if (embedded === undefined) return undefined;
  try {
    return { trace: traceFromAnnotation(embedded, "the image's start-up trace (manifest annotation)"), from: 'image' };
  } catch (err) {
    logFor({ image }).warn({ err: errorText(err) }, "the image's start-up trace is unreadable; not used");
    return undefined;
  }
}

/**
 * Keeps what `recorder` saw when its window closes, or earlier if `flush` is called (the mount goes
 * away first): once, and only when something was read.
 */
export function saveWhenRecorded(recorder: TraceRecorder, metadata: MetadataStore, manifestDigest: string, digests: readonly string[], image: string): { flush: () => Promise<void> } {
  let saved = false;
  const save = async (): Promise<void> => {
    if (saved) return;
    saved = true;
    clearTimeout(timer);
    const trace = recorder.trace(manifestDigest, digests);
    if (trace.ranges.length === 0 || !metadata.setTrace) return;
    const bytes = trace.ranges.reduce((n, r) => n + r.length, 0);
    await metadata.setTrace(manifestDigest, Buffer.from(JSON.stringify(trace) + '\n'))
      .then(() => logFor({ image }).info({ manifestDigest, ranges: trace.ranges.length, bytes }, 'start-up trace recorded'))
      .catch((err: unknown) => logFor({ image }).warn({ err: errorText(err) }, 'cannot store the start-up trace'));
  };
  const timer = setTimeout(() => void save(), recorder.seconds * 1000);
  timer.unref();
  return { flush: save };
}
