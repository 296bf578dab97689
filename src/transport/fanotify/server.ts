/**
 * Serves a fanotify pre-content group: one per worker process, shared by every fanotify mount (their
 * blobs' cache data files carry the group's marks). An event names a range of a data file the kernel
 * is about to read; the range (widened to whole frames by the cache) is made present through the cache
 * backend, then the event is allowed. A failed fetch denies it with EIO, so the reader gets an error
 * and never a hole read as zeros. A blob that becomes complete gets an ignore mark: its reads no
 * longer leave the kernel.
 *
 * The group's fd belongs to the kernel-object owner (the supervisor), so a worker that dies leaves
 * the events it had read pending; the next worker finds them in the journal and answers them, their
 * fd numbers kept from new events meanwhile (the kernel matches a response by number: event-thread.ts).
 */
import { closeSync, readFileSync, statSync, writeSync } from 'node:fs';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { CachedBlob } from '../../cache/types.js';
import { EIO, FAN_ALLOW, fanDenyErrno, ignorePreAccess, respond, unignorePreAccess } from '../../native/fanotify.js';
import { closeQuietly, pipe2 } from '../../native/fd.js';
import { OndemandError, errorText } from '../../util/errors.js';
import { log, logFor } from '../../util/log.js';
import { isRunning } from '../../util/process.js';
import { compiledThreadUrl } from '../../util/thread-url.js';
import type { AllowedRead, EventThreadData, EventThreadMessage, ThreadControl } from './event-thread-protocol.js';
import { fileKey, markedFileKeys, type PendingEvent, type RawEvent } from '../../native/fanotify-events.js';
import { EventJournal, UNKNOWN_FILE } from './journal.js';

/**
 * How long a file's events are denied at once to a reader whose read of it just failed: the kernel
 * follows a failed page with the other pages of its read-ahead window and a read of its own, one
 * after the other (each waits for its event's answer), and each must not wait out another fetch
 * deadline. With 64 KiB frames a window spans many frames, so not only the failed frames: a hung
 * registry made one read(2) take 8 deadlines (48 s for 6 s, test/mount/fanotify.test.ts). Per reader
 * and file, so another program (or a retry a moment later) fetches again.
 */
const FAILED_RANGE_MS = 1_000;

interface ServedFile {
  blob: CachedBlob;
  image: string;
  users: number;
  ignored: boolean;
  /** Readers whose read of this file failed lately: pid → until when its events are denied (ms). */
  failed: Map<number, number>;
  /** Ends the blob's change listener (see unignore). */
  stopListening?: () => void;
}

export interface FanotifyStats {
  /** Events served by the main thread (filled or found present, then allowed). */
  events: number;
  /** Events whose frames were all written already, allowed on the event thread. */
  threadAllowed: number;
  /** Events this process raised itself (its own cache I/O), allowed on the event thread. */
  ownEvents: number;
  /** Events denied with EIO (fetch failed, or a file no mount serves). */
  denied: number;
  /** Events a dead worker left, answered by this one. */
  recovered: number;
  /** Blobs whose reads no longer raise events (ignore marks). */
  ignoreMarks: number;
}

export class FanotifyServer {
  private readonly files = new Map<string, ServedFile>();
  private readonly counters: FanotifyStats = { events: 0, threadAllowed: 0, ownEvents: 0, denied: 0, recovered: 0, ignoreMarks: 0 };
  private thread: Worker | null = null;
  /** Where ThreadControl messages go to the event thread. */
  private control: MessagePort | null = null;
  private wake: [number, number] | null = null;
  private started = false;
  private readonly threadReady: Promise<void>;
  /** See EventThreadData.parent: no response once the parent changed. */
  private readonly parent = process.ppid;

  /** Events read before start(): their files may not be registered yet (a restart re-attaching). */
  private waiting: PendingEvent[] = [];
  /** The files the group marked when the leftovers were taken (see fillEverywhere). */
  private markedAtTakeover: string[] | null = [];
  /** Events a dead worker left (journal), answered by start(); the event thread keeps their fd numbers meanwhile. */
  private readonly leftovers: PendingEvent[] = [];

  /**
   * Reads events at once, so this process's own cache I/O is never left waiting (a restarted worker
   * re-opening its data files raises events of its own before it re-attaches anything); other events
   * wait for start(). A group another worker served first has its leftovers taken before that.
   */
  constructor(private readonly group: number, private readonly journal: EventJournal, fresh: boolean) {
    if (fresh) journal.reset();
    else this.takeLeftovers();
    this.threadReady = this.startThread();
  }

  /**
   * Resolves once the event thread reads events. Until then nothing of this process may touch a marked
   * data file: the thread's start-up (loading its modules) needs the thread pool, and a pool whose
   * threads all wait on events raised by their own reads would make it wait for ever (seen: a
   * restarted worker re-verifying its frames hung every reader).
   */
  ready(): Promise<void> {
    return this.threadReady;
  }

  stats(): FanotifyStats {
    return { ...this.counters };
  }

  /** Serves events on `blob`'s data file (already marked by the owner) until the returned function is called. */
  register(blob: CachedBlob, image: string): () => void {
    const st = statSync(blob.openDataPath ?? blob.dataPath, { bigint: true });
    const key = fileKey(st.dev, st.ino);
    const served: ServedFile = this.files.get(key) ?? { blob, image, users: 0, ignored: false, failed: new Map() };
    served.users += 1;
    if (!this.files.has(key)) {
      this.files.set(key, served);
      served.stopListening = blob.onChangedBehind?.(() => this.unignore(served));
      const view = blob.presenceView?.();
      if (view) {
        const { size, frameSize, bits, written, state, hits } = view;
        this.tell({ kind: 'serve', file: key, view: { size, frameSize, bits, written, state, hits } });
      }
    }
    // A mark outlives the worker that set its ignore mask: a restarted worker's blob, not trusted
    // complete any more (its map was left open), must raise events again.
    if (served.users === 1 && !blob.isComplete()) {
      served.ignored = true;
      this.unignore(served);
    }
    this.ignoreIfComplete(served);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      served.users -= 1;
      if (served.users === 0 && this.files.get(key) === served) {
        served.stopListening?.();
        this.files.delete(key);
        this.tell({ kind: 'unserve', file: key });
      }
    };
  }

  /** Serves events (every mount's files are registered now): the leftovers first in line, then the rest. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const waiting = this.waiting;
    this.waiting = [];
    for (const ev of waiting) void this.serve(ev);
    await this.answerLeftovers();
    this.tell({ kind: 'fast' });
  }

  private tell(msg: ThreadControl): void {
    this.control?.postMessage(msg);
  }

  /** Reads the event thread allowed: they count as uses, keep read-ahead going and may complete a blob. */
  private allowed(reads: AllowedRead[]): void {
    this.counters.threadAllowed += reads.length;
    for (const r of reads) {
      const served = this.files.get(r.file);
      if (!served) continue;
      served.blob.readElsewhere?.(r.offset, r.count);
      this.ignoreIfComplete(served);
    }
  }

  private startThread(): Promise<void> {
    const pipe = pipe2();
    if (typeof pipe === 'number') throw new OndemandError('EFANOTIFY', `pipe2 failed: errno ${-pipe}`);
    this.wake = pipe;
    const channel = new MessageChannel();
    channel.port1.unref();
    this.control = channel.port1;
    const data: EventThreadData = {
      group: this.group, wakeFd: pipe[0], journalFd: this.journal.fd, batchFd: this.journal.batchFd, control: channel.port2, reserve: this.leftovers.map((ev) => ev.fd),
      parent: this.parent,
    };
    const thread = new Worker(compiledThreadUrl(import.meta.url, 'event-thread.js', 'EFANOTIFY'), { workerData: data, transferList: [channel.port2] });
    let isReady: () => void = () => undefined;
    let notReady: (err: Error) => void = () => undefined;
    const ready = new Promise<void>((resolve, reject) => {
      isReady = resolve;
      notReady = reject;
    });
    ready.catch(() => undefined);
    thread.on('message', (msg: EventThreadMessage) => {
      if (msg.kind === 'ready') isReady();
      else if (msg.kind === 'events') {
        if (this.started) for (const ev of msg.events) void this.serve(ev);
        else this.waiting.push(...msg.events);
      }
      else if (msg.kind === 'allowed') this.allowed(msg.reads);
      else if (msg.kind === 'own') this.counters.ownEvents += msg.count;
      else if (msg.kind === 'shared-fds') log.error({ errno: msg.errno }, 'the fanotify event thread has no private fd table: an event may be answered for another with its fd number');
      else {
        if (msg.errno !== 0) log.error({ errno: msg.errno, err: msg.message }, 'fanotify event thread stopped: events are no longer answered');
        notReady(new OndemandError('EFANOTIFY', `the fanotify event thread stopped before it read any event (errno ${msg.errno}${msg.message ? `: ${msg.message}` : ''})`));
      }
    });
    thread.on('error', (err) => {
      log.error({ err: errorText(err) }, 'fanotify event thread failed');
      notReady(new OndemandError('EFANOTIFY', `the fanotify event thread failed to start: ${errorText(err)}`));
    });
    thread.on('exit', () => {
      if (this.thread === thread) this.thread = null;
      notReady(new OndemandError('EFANOTIFY', 'the fanotify event thread exited before it read any event'));
    });
    thread.unref();
    this.thread = thread;
    return ready;
  }

  /**
   * Before any event is read: what a dead worker had read and not answered. The kernel matches a
   * response to the oldest pending event with its fd number, so while an old event waits for its
   * fill no new event may get its number: the event thread keeps them (event-thread.ts).
   * Events of its last read that it had not journaled yet are in the batch file, their range known
   * and their file not: they are journaled now (a worker that dies before answering them leaves them
   * to the next) and filled in every served file (fill()). Any other number is swept with EIO (never zeros).
   */
  private takeLeftovers(): void {
    const journaled = this.journal.entries();
    const known = new Set(journaled.map((o) => o.fd));
    const unjournaled: PendingEvent[] = [];
    let readerGone = 0;
    let batch: RawEvent[] = [];
    try {
      batch = this.journal.unhandled();
    } catch (err) {
      log.error({ err: errorText(err) }, 'cannot read the fanotify batch file: events a dead worker had not journaled are denied (EIO)');
    }
    for (const ev of batch) {
      if (ev.fd < 0 || known.has(ev.fd)) continue;
      known.add(ev.fd);
      if (isRunning(ev.pid)) {
        const p = { ...ev, file: UNKNOWN_FILE };
        this.journal.record(p);
        unjournaled.push(p);
      } else if (respond(this.group, ev.fd, fanDenyErrno(EIO))) {
        // Its reader is gone (the dead worker's own cache I/O): nobody waits, but the kernel keeps a
        // cancelled event until it is answered, and no new event may get its number before.
        readerGone += 1;
      }
    }
    this.leftovers.push(...journaled, ...unjournaled);
    // The files those events may be on: marked now, before this process re-attaches or cleans up anything.
    if (unjournaled.length > 0) this.markedAtTakeover = this.markedFiles();
    if (unjournaled.length > 0 || readerGone > 0) {
      log.warn({ unjournaled: unjournaled.length, readerGone }, 'fanotify events a dead worker read but had not journaled: filled in every served file (those of readers gone answered at once)');
    }
    const last = this.journal.sweepLimit();
    let swept = 0;
    for (let fd = 0; fd <= last; fd++) if (!known.has(fd) && respond(this.group, fd, fanDenyErrno(EIO))) swept += 1;
    this.counters.denied += swept;
    if (swept > 0) log.warn({ deniedUnknown: swept }, 'denied fanotify events a dead worker read but had not journaled (EIO)');
  }

  /** Fills and allows each leftover whose file is served here, else EIO; frees its number after. */
  private async answerLeftovers(): Promise<void> {
    const leftovers = this.leftovers.splice(0);
    await Promise.all(leftovers.map(async (ev) => {
      const ok = await this.fill(ev);
      if (this.orphaned()) return;
      if (respond(this.group, ev.fd, ok ? FAN_ALLOW : fanDenyErrno(EIO))) this.counters[ok ? 'recovered' : 'denied'] += 1;
      this.answered(ev.fd);
    }));
    if (leftovers.length > 0) log.warn({ leftovers: leftovers.length, recovered: this.counters.recovered }, 'answered fanotify events left by the previous worker');
  }

  /** Makes the event's range present; false when it cannot (no mount serves the file, or the fetch failed). */
  private async fill(ev: PendingEvent): Promise<boolean> {
    if (ev.file === UNKNOWN_FILE) return this.fillEverywhere(ev);
    const served = this.files.get(ev.file);
    if (!served) {
      log.warn({ file: ev.file, pid: ev.pid, offset: ev.offset, count: ev.count }, 'fanotify event on a file no mount serves: denied (EIO)');
      return false;
    }
    const { blob } = served;
    const offset = ev.ranged ? ev.offset : 0;
    const count = ev.ranged ? ev.count : blob.size;
    const now = Date.now();
    for (const [pid, until] of served.failed) if (until <= now) served.failed.delete(pid);
    if (served.failed.has(ev.pid)) return false;
    try {
      // Allowed once the verified bytes are in the data file: the reader needs them in the page cache,
      // not on disk (a crash loses only presence bits, and those frames are fetched again). Answering
      // after the fdatasync cost a quarter of the cold throughput (bench/RESULTS.md).
      await blob.ensure(offset, count, { durable: false });
      this.ignoreIfComplete(served);
      return true;
    } catch (err) {
      served.failed.set(ev.pid, Date.now() + FAILED_RANGE_MS);
      logFor({ image: served.image, blob: blob.blobId }).warn({ offset, count, pid: ev.pid, err: errorText(err) }, 'read failed: answering the kernel EIO');
      return false;
    }
  }

  /**
   * An event whose file is unknown (unjournaled: see takeLeftovers). Its file is one of the files the
   * group marked when it was taken over or marks now (marks go only with an unmount, after the
   * event); only when every one of them is served here can it be allowed, after its range is
   * made present in each (a fetch per blob: rare). A marked file nobody serves (a mount that could not
   * be re-attached, a dead daemon's) may be the one: then EIO, as its hole would read as zeros.
   */
  private async fillEverywhere(ev: PendingEvent): Promise<boolean> {
    if (!ev.ranged) return false;
    const now = this.markedFiles();
    if (now === null || this.markedAtTakeover === null) return false;
    const marked = new Set([...this.markedAtTakeover, ...now]);
    const unserved = [...marked].filter((key) => !this.files.has(key));
    if (marked.size === 0 || unserved.length > 0) {
      log.warn({ pid: ev.pid, offset: ev.offset, count: ev.count, unserved: unserved.length }, 'an unjournaled fanotify event may be on a file no mount serves: denied (EIO)');
      return false;
    }
    const results = await Promise.all([...this.files.values()].filter((f) => f.blob.size > ev.offset).map(async (served) => {
      try {
        await served.blob.ensure(ev.offset, Math.min(ev.count, served.blob.size - ev.offset), { durable: false });
        this.ignoreIfComplete(served);
        return true;
      } catch (err) {
        logFor({ image: served.image, blob: served.blob.blobId }).warn({ offset: ev.offset, count: ev.count, pid: ev.pid, err: errorText(err) },
          'read of an unjournaled event\'s range failed: answering the kernel EIO');
        return false;
      }
    }));
    return results.length > 0 && results.every(Boolean);
  }

  /** fileKey()s of the files the group marks; null when they cannot be listed. */
  private markedFiles(): string[] | null {
    try {
      return markedFileKeys(readFileSync(`/proc/self/fdinfo/${this.group}`, 'utf8'));
    } catch (err) {
      log.warn({ err: errorText(err) }, 'cannot list the fanotify group\'s marks: unjournaled events are denied (EIO)');
      return null;
    }
  }

  private async serve(ev: PendingEvent): Promise<void> {
    const ok = await this.fill(ev);
    if (this.orphaned()) return;
    this.counters[ok ? 'events' : 'denied'] += 1;
    try {
      respond(this.group, ev.fd, ok ? FAN_ALLOW : fanDenyErrno(EIO));
    } catch (err) {
      log.error({ fd: ev.fd, err: errorText(err) }, 'fanotify response failed');
    }
    this.answered(ev.fd);
  }

  /**
   * The supervisor died (this process was handed to another parent): the group's holder answers every
   * pending event from now on, and an answer of ours could meet one of its events with the same number.
   */
  private orphaned(): boolean {
    return process.ppid !== this.parent;
  }

  /** The slot is cleared before the event thread frees the number: a new event can reuse both only after. */
  private answered(eventFd: number): void {
    this.journal.clear(eventFd);
    this.tell({ kind: 'release', fd: eventFd });
  }

  /** Every one of `blobs` that is complete now stops raising events (after a prefetch). */
  ignoreComplete(blobs: readonly CachedBlob[]): void {
    for (const served of this.files.values()) if (blobs.includes(served.blob)) this.ignoreIfComplete(served);
  }

  /** How many of `blobs` have their ignore mark (their reads never leave the kernel). */
  ignoredCount(blobs: readonly CachedBlob[]): number {
    let ignored = 0;
    for (const served of this.files.values()) if (served.ignored && blobs.includes(served.blob)) ignored += 1;
    return ignored;
  }

  private ignoreIfComplete(served: ServedFile): void {
    if (served.ignored || !served.blob.isComplete()) return;
    try {
      ignorePreAccess(this.group, served.blob.openDataPath ?? served.blob.dataPath);
      served.ignored = true;
      this.counters.ignoreMarks += 1;
    } catch (err) {
      log.warn({ blob: served.blob.blobId, err: errorText(err) }, 'cannot add the ignore mark of a complete blob (its reads keep raising events)');
    }
  }

  /**
   * Every ignore mask this process set goes (synchronously): for a worker whose supervisor died, so
   * that nobody's word stands for files that may be changed behind a dead daemon's back. The holder
   * does the same when it hears of the death (fanotify-holder-main.ts).
   */
  unignoreAll(): void {
    for (const served of this.files.values()) this.unignore(served);
  }

  /**
   * The blob's data file changed behind the cache: its reads must raise events again (the cache
   * verifies its frames before allowing them), so its ignore mark goes, at once.
   */
  private unignore(served: ServedFile): void {
    if (!served.ignored) return;
    try {
      unignorePreAccess(this.group, served.blob.openDataPath ?? served.blob.dataPath);
      served.ignored = false;
    } catch (err) {
      log.error({ blob: served.blob.blobId, err: errorText(err) }, 'cannot remove the ignore mark of a changed blob: its reads skip verification');
    }
  }

  /** Stops the event thread (unless it ended already) and closes this process's fds (the group itself lives on in its owner). */
  async stop(): Promise<void> {
    const thread = this.thread;
    this.thread = null;
    if (thread && this.wake) {
      const exited = new Promise<void>((r) => thread.once('exit', () => r()));
      try {
        writeSync(this.wake[1], Buffer.from([1]));
      } catch {
        // already gone
      }
      await exited;
    }
    if (this.wake) for (const fd of this.wake) closeQuietly(fd);
    this.wake = null;
    this.control?.close();
    this.control = null;
    this.journal.close();
    closeSync(this.group);
  }
}
