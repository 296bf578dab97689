/** What the fanotify event thread (event-thread.ts) starts with and posts. No side effects: both sides import it. */
import type { PendingEvent } from './events.js';

export interface EventThreadData {
  /** This process's fd of the group. */
  group: number;
  /** Read end of the pipe that stops the thread. */
  wakeFd: number;
  /** The journal's fd (events are recorded before they are posted). */
  journalFd: number;
}

export type EventThreadMessage =
  | { kind: 'events'; events: PendingEvent[] }
  /** Events of this very process (the cache's own reads and writes) answered on the thread. */
  | { kind: 'own'; count: number }
  /** The thread stopped: errno of the failure, 0 when asked to. */
  | { kind: 'end'; errno: number; message?: string };
