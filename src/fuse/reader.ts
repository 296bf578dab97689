/**
 * Reads requests from /dev/fuse on a worker thread, so no libuv threadpool thread is ever parked on
 * the device (a pending fs.read there would starve the daemon's fs, DNS and crypto work).
 *
 * The thread (reader-thread.ts) posts requests to the main thread in batches. Fast path: a READ of an
 * inode that has a FastReadSource (sent by the session over a MessagePort) is answered on the thread
 * itself, with no hand-off to the main thread or the libuv pool; anything the source cannot answer is
 * forwarded like every other request, and the filesystem (and its cache) serve it. Other replies are
 * written by the main thread (writes to /dev/fuse never block).
 */
import { MessageChannel, type Worker } from 'node:worker_threads';
import { writeSync } from 'node:fs';
import { closeQuietly, pipe2 } from '../native/fd.js';
import { OndemandError } from '../util/errors.js';
import { keepSpareThreads, restockSpareThreads, spareThreads, startThread, wantSpareThreads } from '../util/spare-threads.js';
import {
  newCopyShared, stopCopiers, type ControlMessage, type CopierThreadData, type ReaderThreadData, type ThreadMessage,
} from './reader-protocol.js';
import { readerThreadUrl } from './reader-thread-url.js';
import type { EntryTimeouts } from './metadata-replies.js';
import type { FastReadSource, ThreadTreeSpec } from './types.js';

export interface ReaderHandlers {
  onRequest(request: Buffer): void;
  /** A READ the thread served from a source's presence, the first in its frame. */
  onServed?(ino: number, offset: number, length: number): void;
  /** The reader stopped: errno 0 = asked to stop, 19 (ENODEV) = the connection went away. */
  onEnd(errno: number): void;
}

export interface ReaderOptions {
  /** Bytes of the largest request (read buffer). */
  bufferSize: number;
  /** Bytes of the largest READ reply payload the fast path serves (max_pages * 4096). */
  replySize: number;
  /** After a request, keep reading without sleeping for this long (default 0). */
  spinMicros?: number;
  /** Helper threads answering large fast READs in parallel with the reader (default 0). */
  copyThreads?: number;
  /** Fast READs of at least this many bytes go to a free helper thread (default 128 KiB). */
  copyMinBytes?: number;
  /**
   * Fast READs of at least this many bytes are answered with splice(2) (default 64 KiB; 0 = never):
   * one copy instead of two. The reply must fit one pipe: a slot per page plus one for the header, so
   * READs of 1 MiB need a pipe beyond /proc/sys/fs/pipe-max-size (CAP_SYS_RESOURCE); without it,
   * READs up to 1020 KiB are spliced (see FuseSessionOptions.maxPages) and larger ones use pread + write.
   */
  spliceMinBytes?: number;
  /** The reader thread answers metadata requests itself from the tree this builds (FuseFilesystem.threadTree). */
  tree?: { spec: ThreadTreeSpec; timeouts: EntryTimeouts };
}

/** Fast READs from this size up go to a free copy thread unless told otherwise (ReaderOptions.copyMinBytes). */
export const DEFAULT_COPY_MIN_BYTES = 128 * 1024;

/** Fast READs from this size up are spliced unless told otherwise (ReaderOptions.spliceMinBytes). */
export const DEFAULT_SPLICE_MIN_BYTES = 64 * 1024;

/** New copiers start at the reader's first message, or this long after it, whichever comes first. */
const COPIERS_LATEST_MS = 250;

/**
 * Starts the threads of a mount with `copyThreads` copiers ahead of it, and keeps as many started
 * after each mount's threads end (util/spare-threads.ts).
 */
export function keepSpareReaderThreads(copyThreads: number): void {
  keepSpareThreads(readerThreadUrl(), 1 + copyThreads);
}

/** A running reader thread on one /dev/fuse fd. */
export class FuseReader {
  private readonly worker: Worker;
  private readonly copiers: { worker: Worker; control: MessageChannel }[] = [];
  private readonly wakeRead: number;
  private readonly wakeWrite: number;
  private readonly control: MessageChannel;
  /** [0] READs, [1] bytes answered on the threads, [2] metadata requests answered on the reader thread. */
  private readonly counters = new BigInt64Array(new SharedArrayBuffer(24));
  private ended = false;
  private exited = false;
  private unreferenced = false;
  /** Sources posted before the copiers started, to hand them when they do (undefined once they have). */
  private pendingSources: Map<number, FastReadSource> | undefined = new Map();
  private readonly done: Promise<void>;

  constructor(fd: number, options: ReaderOptions, handlers: ReaderHandlers) {
    const url = readerThreadUrl();
    const pipe = pipe2();
    if (typeof pipe === 'number') throw new OndemandError('EFUSE', `pipe2 failed: errno ${-pipe}`, {}, { errno: -pipe });
    [this.wakeRead, this.wakeWrite] = pipe;
    this.control = new MessageChannel();
    const count = Math.max(0, options.copyThreads ?? 0);
    const copy = count === 0 ? undefined : newCopyShared(count, options.copyMinBytes ?? DEFAULT_COPY_MIN_BYTES);
    const common = {
      fd, replySize: options.replySize, counters: this.counters, spliceMinBytes: options.spliceMinBytes ?? DEFAULT_SPLICE_MIN_BYTES,
    };
    let resolveDone!: () => void;
    this.done = new Promise((resolve) => { resolveDone = resolve; });
    const end = (errno: number): void => {
      if (this.ended) return;
      this.ended = true;
      handlers.onEnd(errno);
    };
    // Threads not started yet start once the reader has posted its first message (INIT, once its tree
    // is loaded): started beside it, four threads' start-up on two CPUs held up the mount (fuse-tree:
    // ~90 ms). Spares are running already: they are handed their work at once.
    const sparesReady = spareThreads(url) >= 1 + count;
    let startCopiers: (() => void) | undefined;
    const onMessage = (msg: ThreadMessage): void => {
      startCopiers?.();
      if (msg.kind === 'requests') for (const ab of msg.batch) handlers.onRequest(Buffer.from(ab));
      else if (msg.kind === 'served') handlers.onServed?.(msg.ino, msg.offset, msg.length);
      else end(msg.errno);
    };
    const exits: Promise<void>[] = [];
    startCopiers = (): void => {
      startCopiers = undefined;
      const pending = this.pendingSources ?? new Map<number, FastReadSource>();
      this.pendingSources = undefined;
      for (let index = 0; copy !== undefined && index < count && !this.exited; index++) {
        const control = new MessageChannel();
        const workerData: CopierThreadData = { ...common, role: 'copier', index, copy, bufferSize: options.bufferSize, control: control.port2 };
        const worker = startThread(url, workerData, [control.port2]);
        worker.on('message', onMessage);
        worker.on('error', () => undefined); // its job (if any) stays unanswered; the reader serves on alone
        exits.push(new Promise((resolve) => worker.on('exit', () => { control.port1.close(); resolve(); })));
        for (const [ino, source] of pending) control.port1.postMessage({ kind: 'source', ino, source } satisfies ControlMessage);
        if (this.unreferenced) {
          worker.unref();
          control.port1.unref();
        }
        this.copiers.push({ worker, control });
      }
    };
    // A reader that never posts (a connection adopted after INIT, every request answered on the
    // thread) gets its copiers all the same.
    setTimeout(() => startCopiers?.(), COPIERS_LATEST_MS).unref();
    const workerData: ReaderThreadData = {
      ...common, role: 'reader', copy, wakeFd: this.wakeRead, bufferSize: options.bufferSize, spinMicros: options.spinMicros ?? 0,
      control: this.control.port2, ...(options.tree ? { tree: options.tree } : {}),
    };
    this.worker = startThread(url, workerData, [this.control.port2]);
    this.worker.on('message', onMessage);
    if (sparesReady) startCopiers?.();
    // The next mount finds spares when this one's threads have ended (started now, they would run
    // beside this mount's first reads).
    wantSpareThreads(url, 1 + count);
    this.worker.on('error', () => {
      // The reader tells the copiers to stop only on its normal way out.
      if (copy) stopCopiers(copy);
      end(5);
    });
    exits.push(new Promise((resolve) => this.worker.on('exit', () => {
      this.exited = true;
      end(0);
      this.control.port1.close();
      resolve();
    })));
    // The copiers' exits are in `exits` by the time the reader's is seen: they start on its messages.
    void exits[0]!.then(() => Promise.all(exits)).then(() => {
      closeQuietly(this.wakeRead);
      closeQuietly(this.wakeWrite);
      resolveDone();
      restockSpareThreads(url);
    });
  }

  /**
   * From now on READs of `ino` may be answered on the worker from `source`. Posted before the reply
   * that lets the kernel send such READs (OPEN), so the worker finds it when the first one arrives.
   */
  addSource(ino: number, source: FastReadSource): void {
    if (this.exited) return;
    const msg: ControlMessage = { kind: 'source', ino, source };
    this.pendingSources?.set(ino, source);
    for (const c of this.copiers) c.control.port1.postMessage(msg);
    this.control.port1.postMessage(msg);
  }

  /** READs and bytes the threads answered themselves, and metadata requests the reader thread answered. */
  served(): { reads: number; bytes: number; metadata: number } {
    return { reads: Number(Atomics.load(this.counters, 0)), bytes: Number(Atomics.load(this.counters, 1)), metadata: Number(Atomics.load(this.counters, 2)) };
  }

  /** Stops the thread (the fd stays open and the connection alive). */
  async stop(): Promise<void> {
    if (!this.exited) writeSync(this.wakeWrite, Buffer.from([1]));
    await this.done;
  }

  /** Resolves when the thread has exited (stop() or the connection going away). */
  whenDone(): Promise<void> {
    return this.done;
  }

  unref(): void {
    this.unreferenced = true;
    this.worker.unref();
    this.control.port1.unref();
    for (const c of this.copiers) {
      c.worker.unref();
      c.control.port1.unref();
    }
  }
}
