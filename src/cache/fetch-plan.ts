/**
 * Which frames a read or a prefetch fetches, and in which range requests. Pure: it decides from the
 * frame layout and each frame's state, and the caller starts the jobs (fetch-jobs.ts).
 */
import type { FrameEntry } from '../format/image/types.js';

/** Where a frame's stored bytes lie: all that planning needs of the TOC. */
export type StoredFrame = Pick<FrameEntry, 'compressedOffset' | 'compressedSize'>;

/** Each frame's state as the planner sees it. */
export interface FrameStates {
  /** Written, durable and verified. */
  present(i: number): boolean;
  /** A job is already fetching it. */
  inFlight(i: number): boolean;
}

export interface PlanInput {
  frames: readonly StoredFrame[];
  states: FrameStates;
  /** Cap on the stored bytes of one merged range request. */
  maxMergeBytes: number;
}

/** In frame order: start one job (one range request) for frames first..last, or join frame's job. */
export type PlanStep = { kind: 'fetch'; first: number; last: number } | { kind: 'join'; frame: number };

/** A sequential read followed: the frame it continues at, and the read-ahead it last got. */
export interface ReadStream {
  readonly next: number;
  readonly window: number;
}

/** Sequential reads of one blob followed at once (files read side by side). */
export const MAX_STREAMS = 8;

export interface ReadPlan {
  steps: PlanStep[];
  /** The streams after this read (the same array when none changed). */
  streams: readonly ReadStream[];
}

/** Stored bytes of frames a..b, which lie contiguously. */
export function storedBytes(frames: readonly StoredFrame[], a: number, b: number): number {
  const fa = frames[a] as StoredFrame;
  const fb = frames[b] as StoredFrame;
  return fb.compressedOffset + fb.compressedSize - fa.compressedOffset;
}

/** Last frame of a mergeable run from `a` (≤ b): following frames idle, stored bytes contiguous, under the cap. */
export function runEnd(p: PlanInput, a: number, b: number): number {
  let j = a;
  let bytes = (p.frames[a] as StoredFrame).compressedSize;
  while (j < b) {
    const cur = p.frames[j] as StoredFrame;
    const nxt = p.frames[j + 1] as StoredFrame;
    if (p.states.present(j + 1) || p.states.inFlight(j + 1)) break;
    if (nxt.compressedOffset !== cur.compressedOffset + cur.compressedSize) break;
    if (bytes + nxt.compressedSize > p.maxMergeBytes) break;
    bytes += nxt.compressedSize;
    j++;
  }
  return j;
}

/** Frames first..last: present ones skipped, in-flight ones joined, idle missing runs fetched (merged). */
export function missingSteps(p: PlanInput, first: number, last: number): PlanStep[] {
  const steps: PlanStep[] = [];
  let i = first;
  while (i <= last) {
    if (p.states.present(i)) {
      i++;
    } else if (p.states.inFlight(i)) {
      steps.push({ kind: 'join', frame: i });
      i++;
    } else {
      const j = runEnd(p, i, last);
      steps.push({ kind: 'fetch', first: i, last: j });
      i = j + 1;
    }
  }
  return steps;
}

/**
 * A read of frames first..last, some of them missing. A read that continues a recent stream (it
 * includes the frame right after where an earlier fetching read, with its read-ahead, ended) is
 * widened: the idle missing frames right after it ride along in the same range request, 1 frame the
 * first time, doubling up to readAheadFrames, so a short sequential read is not charged a full
 * read-ahead (flat widening made `make demo` fetch 3.32 MB instead of 2.27). An isolated read (a
 * program's first pages, an mmap fault elsewhere, another read of a frame still in flight) fetches
 * only its own frames: widening every miss by 2 frames had `chroot /bin/true` on Debian minbase fetch
 * 5.9 MB instead of 2.5. An isolated read that fetches starts a new stream.
 */
export function planRead(
  p: PlanInput & { readAheadFrames: number }, streams: readonly ReadStream[], first: number, last: number,
): ReadPlan {
  const k = streams.findIndex((st) => st.next >= first && st.next <= last);
  const stream = k >= 0 ? streams[k] : undefined;
  const window = stream ? Math.min(p.readAheadFrames, Math.max(1, stream.window * 2)) : 0;
  let end = last;
  const limit = Math.min(p.frames.length - 1, last + window);
  while (end < limit && !p.states.present(end + 1) && !p.states.inFlight(end + 1)) end++;
  const steps = missingSteps(p, first, end);
  if (stream) {
    const next = [...streams];
    next[k] = { next: Math.max(stream.next, end + 1), window };
    return { steps, streams: next };
  }
  if (steps.some((s) => s.kind === 'fetch')) return { steps, streams: [...streams, { next: last + 1, window: 0 }].slice(-MAX_STREAMS) };
  return { steps, streams };
}
