/** What the fanotify event thread (event-thread.ts) starts with and posts. No side effects: both sides import it. */
import type { MessagePort } from 'node:worker_threads';
import type { PendingEvent } from '../../native/fanotify-events.js';

export interface EventThreadData {
  /** This process's fd of the group. */
  group: number;
  /** Read end of the pipe that stops the thread. */
  wakeFd: number;
  /** The journal's fd (events are recorded before they are posted). */
  journalFd: number;
  /** The batch file's fd: the thread reads the group into a shared mapping of it (journal.ts). */
  batchFd: number;
  /** Where the main thread's ThreadControl messages come in (read between reads of the group). */
  control: MessagePort;
  /** Fd numbers of the events a dead worker left: no new event may get one until it is released. */
  reserve: number[];
  /**
   * The process's parent when the server started. Once it changes (the supervisor died) this process
   * reads and answers no more events: the group's holder answers them (its numbers would meet ours).
   */
  parent: number;
}

/** A served file's presence as the thread checks it (the cache's presence view, src/cache/presence-view.ts). */
export interface ThreadView {
  size: number;
  frameSize: number;
  bits: Uint8Array;
  written: Uint8Array;
  state: Int32Array;
  hits: BigInt64Array;
}

/** From the main thread. */
export type ThreadControl =
  /** Events on `file` whose range is all written may be allowed on the thread. */
  | { kind: 'serve'; file: string; view: ThreadView }
  | { kind: 'unserve'; file: string }
  /** Allowing on the thread starts once the events a dead worker left are answered. */
  | { kind: 'fast' }
  /** The event with this fd number is answered (and its journal slot cleared): the number may be reused. */
  | { kind: 'release'; fd: number };

/** A read allowed on the thread: the main thread learns of it afterwards (read-ahead, ignore marks). */
export interface AllowedRead {
  file: string;
  offset: number;
  count: number;
}

export type EventThreadMessage =
  /** Its modules are loaded and its fd table private: from now on it reads events without the thread pool. */
  | { kind: 'ready' }
  | { kind: 'events'; events: PendingEvent[] }
  /** Events of this very process (the cache's own reads and writes) answered on the thread. */
  | { kind: 'own'; count: number }
  /** Events whose frames were all written, allowed on the thread. */
  | { kind: 'allowed'; reads: AllowedRead[] }
  /** The thread could not take a private fd table: fd numbers of old and new events may meet. */
  | { kind: 'shared-fds'; errno: number }
  /** The thread stopped: errno of the failure, 0 when asked to. */
  | { kind: 'end'; errno: number; message?: string };
