/**
 * What FuseReader (main thread, reader.ts) and its threads (reader-thread.ts) exchange: the workerData
 * each thread starts with, the messages both ways, and the shared state of the copy threads.
 * Imported by both sides, so it must stay free of side effects (no koffi here).
 */
import type { MessagePort } from 'node:worker_threads';
import type { EntryTimeouts } from './metadata-replies.js';
import type { FastReadSource, ThreadTreeSpec } from './types.js';

/** Bytes of one copier mailbox: a READ request is 80 bytes. */
export const JOB_BYTES = 128;

/** copy.state[1 + i] of copier i. STARTING: its thread is not running yet (it is handed nothing until IDLE). */
export const CopierState = { IDLE: 0, JOB: 1, STOP: 2, STARTING: 3 } as const;

/**
 * Copy threads answer large fast READs so several are copied at once. copy.state[1 + i] says what
 * copier i does (CopierState; [0] unused); a job is the request bytes in jobs[i * JOB_BYTES ...] with
 * its length in lengths[i]. All on SharedArrayBuffers.
 */
export interface CopyShared {
  count: number;
  /** READs from this size up are handed to a free copier. */
  minBytes: number;
  state: Int32Array;
  lengths: Int32Array;
  jobs: Uint8Array;
}

interface ThreadCommon {
  /** The /dev/fuse fd (shared: the kernel matches replies by unique, not by thread). */
  fd: number;
  /** Bytes of the largest READ reply payload served on the thread. */
  replySize: number;
  /** [0] READs, [1] bytes answered on the threads, [2] metadata requests answered on the reader thread. */
  counters: BigInt64Array;
  copy: CopyShared | undefined;
  /** 0 = never splice. */
  spliceMinBytes: number;
  /** ControlMessages from the session. */
  control: MessagePort;
}

export interface ReaderThreadData extends ThreadCommon {
  role: 'reader';
  /** Readable end of the wake-up pipe: a byte there stops the thread. */
  wakeFd: number;
  /** Bytes of the largest request. */
  bufferSize: number;
  spinMicros: number;
  /** Metadata requests answered on the thread, from the tree this builds (reader-metadata.ts). */
  tree?: { spec: ThreadTreeSpec; timeouts: EntryTimeouts };
}

export interface CopierThreadData extends ThreadCommon {
  role: 'copier';
  /** Bytes of the largest request: a copier also reads the device (runCopier). */
  bufferSize: number;
  /** Its mailbox: copy.state[1 + index], lengths[index], jobs[index * JOB_BYTES ...]. */
  index: number;
  copy: CopyShared;
}

export type ThreadData = ReaderThreadData | CopierThreadData;

/** Session -> thread. */
export interface ControlMessage {
  kind: 'source';
  ino: number;
  source: FastReadSource;
}

/** Thread -> session. */
export type ThreadMessage =
  | { kind: 'requests'; batch: ArrayBuffer[] }
  /** A READ served from a source with presence, the first in its frame (FuseFilesystem.servedOnThread). */
  | { kind: 'served'; ino: number; offset: number; length: number }
  | { kind: 'end'; errno: number };

export function newCopyShared(count: number, minBytes: number): CopyShared {
  const state = new Int32Array(new SharedArrayBuffer(4 * (1 + count)));
  state.fill(CopierState.STARTING, 1);
  return {
    count,
    minBytes,
    state,
    lengths: new Int32Array(new SharedArrayBuffer(4 * count)),
    jobs: new Uint8Array(new SharedArrayBuffer(JOB_BYTES * count)),
  };
}

/** Tells every copier to exit; a job not yet taken is dropped (a successor gets it resent). */
export function stopCopiers(copy: CopyShared): void {
  for (let i = 0; i < copy.count; i++) {
    Atomics.store(copy.state, 1 + i, CopierState.STOP);
    Atomics.notify(copy.state, 1 + i);
  }
}
