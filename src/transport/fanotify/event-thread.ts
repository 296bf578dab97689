/**
 * The fanotify event thread (started by server.ts): reads the group, records each event in the journal
 * and posts it to the main thread, which fills the range and answers. Events raised by this process
 * itself are answered here at once: they are the cache's own reads and writes of a data file opened
 * after the mark (a restarted worker), which must never wait for the main thread — it may be the one
 * blocked in that very call. (This process never reads the mounts it serves.) So are events whose
 * frames are all written already (the cache's presence view): a sequential reader meeting its
 * read-ahead waits for no main-thread turn, which may be busy hashing the next frames.
 *
 * The kernel matches a response by the event's fd number alone, so the number of an event still
 * pending (one a dead worker left, or one the main thread is filling) must go to no other event. That
 * holds only in an fd table nobody else changes: this thread takes a private one at its start (a
 * number the process's other threads open and close meanwhile, a module being loaded, would else be
 * handed to a new event while an old one with it waits), keeps the dead worker's numbers taken, and
 * closes an event's fd only when the main thread has answered it ('release').
 */
import { closeSync, fstatSync, openSync, readdirSync, readlinkSync } from 'node:fs';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { EPOCH, viewCovers } from '../../cache/presence-view.js';
import { FAN_ALLOW, respond } from '../../native/fanotify.js';
import { closeQuietly, reserveFdNumber, unshareFdTable } from '../../native/fd.js';
import { blockSignalsOfThisThread } from '../../native/process.js';
import { EAGAIN, EINTR } from '../../fuse/errno.js';
import { F_GETFL, F_SETFL, O_NONBLOCK, errno, fcntl } from '../../fuse/reader-libc.js';
import { pollerOf } from '../../native/poll.js';
import type { AllowedRead, EventThreadData, EventThreadMessage, ThreadControl, ThreadView } from './event-thread-protocol.js';
import { BATCH_STATE_OFFSET, fileKey, parseEvents, type ParsedEvent, type PendingEvent, type RawEvent } from '../../native/fanotify-events.js';
import { mapShared, type SharedMap } from '../../native/shared-map.js';
import { BATCH_BYTES, BatchState, EventJournal } from './journal.js';

if (parentPort === null) throw new Error('event-thread.ts runs only as a worker thread (see server.ts)');
const port = parentPort;
const data = workerData as EventThreadData;
const journal = EventJournal.fromFds(data.journalFd, data.batchFd);
/**
 * poll(2) wakes up this often when idle: a thread parked in native code would hold process.exit()
 * (and worker.terminate()) forever, and this one lives as long as its process.
 */
const IDLE_WAKE_MS = 250;

function post(msg: EventThreadMessage): void {
  port.postMessage(msg);
}

const views = new Map<string, ThreadView>();
let fast = false;
/** Fd numbers this thread holds for events not answered yet (read here, or left by a dead worker). */
const held = new Set<number>();

function takeControl(): void {
  for (let m = receiveMessageOnPort(data.control); m !== undefined; m = receiveMessageOnPort(data.control)) {
    const msg = m.message as ThreadControl;
    if (msg.kind === 'serve') views.set(msg.file, msg.view);
    else if (msg.kind === 'unserve') views.delete(msg.file);
    else if (msg.kind === 'release') release(msg.fd);
    else fast = true;
  }
}

/** The parent this process served under is gone (see EventThreadData.parent). */
function orphaned(): boolean {
  return process.ppid !== data.parent;
}

function release(fd: number): void {
  if (held.delete(fd)) closeQuietly(fd);
}

/**
 * A private fd table holding only what this thread uses: the copies of the other threads' files,
 * sockets and pipes go (a copy would keep a connection or a child's stdin open after its owner closed
 * it); stdio and the anonymous inodes (the event loops' epoll and eventfd) stay. Signals go to the
 * other threads: libuv's handler writes to pipes this table no longer has. Then the dead worker's
 * numbers are taken with placeholders (one in use here stays in use: no event gets it either).
 */
function isolateFdTable(): void {
  blockSignalsOfThisThread();
  const e = unshareFdTable();
  if (e !== 0) {
    post({ kind: 'shared-fds', errno: -e });
  } else {
    const keep = new Set([data.group, data.wakeFd, data.journalFd, data.batchFd]);
    for (const name of readdirSync('/proc/thread-self/fd')) {
      const fd = Number(name);
      if (fd <= 2 || keep.has(fd)) continue;
      let target: string;
      try {
        target = readlinkSync(`/proc/thread-self/fd/${name}`);
      } catch {
        continue; // the listing's own fd, closed already
      }
      if (!target.startsWith('anon_inode:')) closeQuietly(fd);
    }
  }
  const wanted = new Set(data.reserve);
  let placeholder = openSync('/dev/null', 'r');
  // The placeholder itself may get one of the numbers (the lowest free): then it keeps it.
  for (; wanted.has(placeholder); placeholder = openSync('/dev/null', 'r')) held.add(placeholder);
  for (const fd of wanted) if (reserveFdNumber(fd, placeholder)) held.add(fd);
  closeSync(placeholder);
}

/** True when every frame of the event's range is written and the file stable (presence-view protocol). */
function written(view: ThreadView | undefined, ev: RawEvent): view is ThreadView {
  if (!view || !ev.ranged || ev.count <= 0) return false;
  const end = Math.min(view.size, ev.offset + ev.count);
  if (ev.offset >= end) return false;
  return (Atomics.load(view.state, EPOCH) & 1) === 0 && viewCovers(view, ev.offset, end);
}

function run(batch: SharedMap): never {
  const { group, wakeFd } = data;
  fcntl(group, F_SETFL, fcntl(group, F_GETFL) | O_NONBLOCK);
  const buf = batch.bytes;
  const wait = pollerOf(group, wakeFd);
  let last = BATCH_BYTES; // what the dead worker left is taken already (server.ts)
  for (;;) {
    if (orphaned()) {
      post({ kind: 'end', errno: 0, message: 'the supervisor is gone: its group holder answers the events' });
      process.exit(0);
    }
    // Zeroes after the records mark where a read's batch ends.
    buf.fill(0, 0, last);
    const n = batch.readFrom(group);
    last = n > 0 ? n : 0;
    if (n > 0) {
      takeControl();
      const pending: PendingEvent[] = [];
      const allowed: AllowedRead[] = [];
      let own = 0;
      const mark = (ev: ParsedEvent, state: number): void => {
        buf.writeUInt8(state, ev.record + BATCH_STATE_OFFSET);
      };
      for (const ev of parseEvents(buf, n)) {
        if (orphaned()) break; // its slot and number stay for the holder
        if (ev.pid === process.pid) {
          respond(group, ev.fd, FAN_ALLOW);
          mark(ev, BatchState.answered);
          closeSync(ev.fd);
          own += 1;
          continue;
        }
        const st = fstatSync(ev.fd, { bigint: true });
        const file = fileKey(st.dev, st.ino);
        const view = fast ? views.get(file) : undefined;
        if (written(view, ev)) {
          respond(group, ev.fd, FAN_ALLOW);
          mark(ev, BatchState.answered);
          closeSync(ev.fd);
          Atomics.add(view.hits, 0, 1n);
          allowed.push({ file, offset: ev.offset, count: ev.count });
          continue;
        }
        const p = { ...ev, file };
        journal.record(p);
        mark(ev, BatchState.journaled);
        held.add(ev.fd);
        pending.push(p);
      }
      if (pending.length > 0) post({ kind: 'events', events: pending });
      if (allowed.length > 0) post({ kind: 'allowed', reads: allowed });
      if (own > 0) post({ kind: 'own', count: own });
      continue;
    }
    const e = n < 0 ? errno() : 0;
    if (e === EINTR) continue;
    if (e !== EAGAIN) {
      post({ kind: 'end', errno: e, message: `read of the fanotify group failed (errno ${e})` });
      process.exit(0);
    }
    const woke = wait(IDLE_WAKE_MS);
    if (woke === 'error' && errno() !== EINTR) {
      post({ kind: 'end', errno: errno() });
      process.exit(0);
    }
    if (woke === 'wake') {
      post({ kind: 'end', errno: 0 });
      process.exit(0);
    }
  }
}

try {
  isolateFdTable();
  // Events are read straight into the batch file (journal.ts): a kill after the read loses none.
  const batch = mapShared(data.batchFd, BATCH_BYTES);
  post({ kind: 'ready' });
  run(batch);
} catch (err) {
  post({ kind: 'end', errno: -1, message: err instanceof Error ? err.message : String(err) });
  process.exit(0);
}
