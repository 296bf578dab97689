/**
 * A read-only view of one cached blob's presence, shared with other threads (SharedArrayBuffers), so
 * a transport can serve reads of present frames straight from the data file without a round trip
 * through the thread that owns the cache. The cache stays the only writer and the only fetcher.
 *
 * Protocol for a reader of [offset, end) (any thread):
 *   1. e1 = Atomics.load(state, EPOCH); odd → do not use the file (the cache is changing it or closed).
 *   2. every frame floor(offset/frameSize) .. floor((end-1)/frameSize) has its bit set in `bits` or in
 *      `written` (Atomics.load); otherwise ask the cache.
 *   3. pread the bytes from `dataPath` (the reader's own fd: the cache's fd may be closed any time).
 *   4. e2 = Atomics.load(state, EPOCH); e2 !== e1 → discard the bytes and ask the cache.
 *   5. Atomics.add(hits, 0, 1n): the read counts as a cache hit in the blob's stats.
 * Bits only go from 0 to 1 outside an odd epoch: a `written` bit once the frame's verified bytes are
 * in the data file (a read needs no more: the page cache has them), a presence bit once they are
 * durable too (what the map records); the cache clears bits and frees data blocks (eviction) only inside an odd epoch, and
 * leaves the epoch odd for good when it closes the blob. So bytes that pass step 4 are right.
 */

export const EPOCH = 0;

export interface PresenceView {
  readonly blobId: string;
  /** Size of the uncompressed view (the data file's size). */
  readonly size: number;
  readonly frameSize: number;
  readonly frameCount: number;
  /** The sparse data file: a byte there is valid only while the protocol above says so. */
  readonly dataPath: string;
  /** Presence bits: frame i is bit (i & 7) of byte i >> 3. On a SharedArrayBuffer. */
  readonly bits: Uint8Array;
  /** Frames whose verified bytes are written, durable or not yet (same layout, SharedArrayBuffer). */
  readonly written: Uint8Array;
  /** state[EPOCH]: even while the data file is stable, odd while it changes and after close. */
  readonly state: Int32Array;
  /** hits[0]: reads served through this view, added to the blob's cache hits. */
  readonly hits: BigInt64Array;
}

/** True when every frame covering [offset, end) has its verified bytes in the data file (end > offset). */
export function viewCovers(view: Pick<PresenceView, 'frameSize' | 'bits' | 'written'>, offset: number, end: number): boolean {
  const last = Math.floor((end - 1) / view.frameSize);
  for (let i = Math.floor(offset / view.frameSize); i <= last; i++) {
    const bit = 1 << (i & 7);
    if ((Atomics.load(view.bits, i >> 3) & bit) === 0 && (Atomics.load(view.written, i >> 3) & bit) === 0) return false;
  }
  return true;
}

/** The cache's side of a view: it brackets destructive changes and retires the view on close. */
export class SharedPresence {
  readonly view: PresenceView;
  private retired = false;

  constructor(blob: { blobId: string; size: number; frameSize: number; frameCount: number; dataPath: string }, bits: Uint8Array, written: Uint8Array) {
    if (!(bits.buffer instanceof SharedArrayBuffer) || !(written.buffer instanceof SharedArrayBuffer)) {
      throw new TypeError('presence bits must live on a SharedArrayBuffer');
    }
    this.view = {
      ...blob,
      bits,
      written,
      state: new Int32Array(new SharedArrayBuffer(4)),
      hits: new BigInt64Array(new SharedArrayBuffer(8)),
    };
  }

  /** Before clearing bits or freeing data blocks: readers stop trusting the file. */
  beginChange(): void {
    if ((Atomics.load(this.view.state, EPOCH) & 1) === 0) Atomics.add(this.view.state, EPOCH, 1);
  }

  /** After the change: the (new) bits can be trusted again. No effect once retired. */
  endChange(): void {
    if (this.retired) return;
    if ((Atomics.load(this.view.state, EPOCH) & 1) === 1) Atomics.add(this.view.state, EPOCH, 1);
  }

  /** The blob is closing: the view is never valid again (its data file may be closed or replaced). */
  retire(): void {
    this.retired = true;
    this.beginChange();
  }

  /** Reads served through the view. */
  hits(): number {
    return Number(Atomics.load(this.view.hits, 0));
  }
}
