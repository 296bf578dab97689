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

/**
 * A sequential read followed: `next` is the first frame its read-ahead has not asked for yet, `window`
 * the size of its last read-ahead, `trigger` the frame whose read asks for the next one (the first
 * frame of the last read-ahead: reaching it leaves `window` frames in flight ahead of the reader).
 */
export interface ReadStream {
  readonly next: number;
  readonly window: number;
  readonly trigger: number;
}

/** Sequential reads of one blob followed at once (files read side by side). */
export const MAX_STREAMS = 8;

export interface ReadPlan {
  /** The read's own missing frames: fetched (demand) or joined. */
  steps: PlanStep[];
  /** Read-ahead: fetches started behind the read, nobody waits for them (yet). */
  ahead: PlanStep[];
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

/** True when a read of frames first..last moves stream `st`: it reached the stream's trigger or its end. */
function moves(st: ReadStream, first: number, last: number): boolean {
  return (st.trigger >= first && st.trigger <= last) || (st.next >= first && st.next <= last);
}

/** True when a read of frames first..last moves one of `streams` (see moves). */
export function continuesStream(streams: readonly ReadStream[], first: number, last: number): boolean {
  return streams.some((st) => moves(st, first, last));
}

/**
 * A read of frames first..last (missing or not). Its own missing frames are fetched alone, so the
 * reader never waits for frames it did not ask for. A read that moves a stream (continuesStream)
 * starts the stream's next read-ahead after it, 1 frame the first time, doubling up to
 * readAheadFrames, in requests of at most readAheadJobBytes that run side by side (decoding, hashing
 * and writing one overlaps fetching the next); the reader meets them in flight or present, and its
 * arrival at the first of them asks for the next, so a sequential reader keeps a window in flight
 * ahead of it and never waits for a fetch it could have started earlier. A short sequential read is
 * not charged a full read-ahead (flat widening made `make demo` fetch 3.32 MB instead of 2.27). A read
 * that moves no stream (a program's first pages, an mmap fault elsewhere, another read of a frame in
 * flight) fetches only its own frames: widening every miss by 2 frames had `chroot /bin/true` on
 * Debian minbase fetch 5.9 MB instead of 2.5. Such a read that fetches starts a new stream.
 */
export function planRead(
  p: PlanInput & { readAheadFrames: number; readAheadJobBytes: number }, streams: readonly ReadStream[], first: number, last: number,
): ReadPlan {
  const steps = missingSteps(p, first, last);
  const k = streams.findIndex((st) => moves(st, first, last));
  const stream = k >= 0 ? streams[k] : undefined;
  if (!stream) {
    if (steps.some((s) => s.kind === 'fetch')) {
      return { steps, ahead: [], streams: [...streams, { next: last + 1, window: 0, trigger: last + 1 }].slice(-MAX_STREAMS) };
    }
    return { steps, ahead: [], streams };
  }
  const window = Math.min(p.readAheadFrames, Math.max(1, stream.window * 2));
  const from = Math.max(stream.next, last + 1);
  const to = Math.min(p.frames.length - 1, from + window - 1);
  const ahead = window > 0 && from <= to
    ? missingSteps({ ...p, maxMergeBytes: Math.min(p.maxMergeBytes, p.readAheadJobBytes) }, from, to).filter((s) => s.kind === 'fetch')
    : [];
  const next = [...streams];
  next[k] = window > 0 ? { next: to + 1, window, trigger: from } : { next: last + 1, window: 0, trigger: last + 1 };
  return { steps, ahead, streams: next };
}
