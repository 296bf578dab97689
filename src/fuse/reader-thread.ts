/**
 * The entry of a FuseReader thread (started by reader.ts with ThreadData, or as a spare that gets it later).
 *
 * reader: sets the /dev/fuse fd non-blocking, drains every queued request, answers the READs it can
 *   itself (reader-serve.ts) or hands large ones to an idle copier, posts the rest to the main thread
 *   as one batch (ArrayBuffers transferred, no copy), then sleeps in poll(2) on the device and the
 *   wake-up pipe — after spinning a moment, as the next request of a stream usually follows at once.
 * copier: waits for a job in its mailbox (reader-protocol.ts), answers it like the reader would, then
 *   answers what is queued on the device until nothing is.
 * All read and reply on the same fd: the kernel matches replies by unique, not by thread.
 */
import { parentPort } from 'node:worker_threads';
import { IN_HEADER_SIZE, InHeaderOffset, Opcode, ReadInOffset } from './layout.js';
import { EAGAIN, EINTR, ENODEV, ENOENT } from './errno.js';
import { F_GETFL, F_SETFL, O_NONBLOCK, errno, fcntl, read } from './reader-libc.js';
import { pollerOf } from '../native/poll.js';
import {
  CopierState, JOB_BYTES, stopCopiers, type CopierThreadData, type CopyShared, type ReaderThreadData, type ThreadData,
  type ThreadMessage,
} from './reader-protocol.js';
import { FastReads } from './reader-serve.js';
import { MetadataOnThread } from './reader-metadata.js';
import type { MetadataTree } from './types.js';
import { threadData } from '../util/spare-threads.js';

/** Requests posted to the main thread in one message at most. */
const MAX_BATCH = 64;

if (parentPort === null) throw new Error('reader-thread.ts runs only as a worker thread (see reader.ts)');
const port = parentPort;
const data = await threadData<ThreadData>();
const fast = new FastReads(data, (ino, offset, length) => post({ kind: 'served', ino, offset, length }));
const metadata = data.role === 'reader' ? await metadataOnThread(data) : undefined;

/** The thread's own tree, when the filesystem offers one; without it every metadata request goes to the main thread. */
async function metadataOnThread(d: ReaderThreadData): Promise<MetadataOnThread | undefined> {
  if (d.tree === undefined) return undefined;
  try {
    const m = (await import(d.tree.spec.module)) as { createMetadataTree(args: unknown): MetadataTree };
    return new MetadataOnThread(d.fd, m.createMetadataTree(d.tree.spec.args), d.tree.timeouts, d.counters.subarray(2, 3));
  } catch {
    return undefined; // the main thread answers them all, as it would without a tree
  }
}

function post(msg: ThreadMessage, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

/** A copy of req[0, n) the main thread can own. */
function detach(req: Buffer, n: number): ArrayBuffer {
  const ab = new ArrayBuffer(n);
  new Uint8Array(ab).set(req.subarray(0, n));
  return ab;
}

/**
 * READs up to this size are held for a copier when another request follows (runReader): a small
 * random READ that misses the page cache is a disk wait. Larger ones are the kernel's read-ahead of a
 * sequential reader, answered here (hand-offs of those measured no faster on 2 CPUs).
 */
const HELD_MAX_BYTES = 64 * 1024;

/** The size of the READ in req[0, n) when this thread's fast path knows its inode and it fits a copier's mailbox; -1 otherwise. */
function fastReadSize(req: Buffer, n: number): number {
  if (n > JOB_BYTES || n < IN_HEADER_SIZE + ReadInOffset.SIZE + 4 || req.readUInt32LE(InHeaderOffset.OPCODE) !== Opcode.READ) return -1;
  return fast.has(Number(req.readBigUInt64LE(InHeaderOffset.NODEID))) ? req.readUInt32LE(IN_HEADER_SIZE + ReadInOffset.SIZE) : -1;
}

/** Gives the READ in req[0, n) to an idle copier if it is at least `minBytes`; false = none idle, or not worth one. */
function handOff(copy: CopyShared | undefined, req: Buffer, n: number, minBytes = copy?.minBytes ?? 0): boolean {
  if (copy === undefined) return false;
  const size = fastReadSize(req, n);
  if (size < 0 || size < minBytes) return false;
  for (let i = 0; i < copy.count; i++) {
    if (Atomics.load(copy.state, 1 + i) !== CopierState.IDLE) continue;
    copy.jobs.set(req.subarray(0, n), i * JOB_BYTES);
    copy.lengths[i] = n;
    Atomics.store(copy.state, 1 + i, CopierState.JOB);
    Atomics.notify(copy.state, 1 + i);
    return true;
  }
  return false;
}

/** Whether a copier is answering a READ (then several readers are at work, and they need the CPUs). */
function copiersBusy(copy: CopyShared | undefined): boolean {
  if (copy === undefined) return false;
  for (let i = 0; i < copy.count; i++) if (Atomics.load(copy.state, 1 + i) === CopierState.JOB) return true;
  return false;
}

function finish(copy: CopyShared | undefined, endErrno: number): never {
  fast.close();
  metadata?.close();
  if (copy !== undefined) stopCopiers(copy);
  post({ kind: 'end', errno: endErrno });
  process.exit(0);
}

function runReader(d: ReaderThreadData): never {
  const { fd, copy, spinMicros, bufferSize } = d;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  const req = Buffer.alloc(bufferSize);
  const wait = pollerOf(fd, d.wakeFd);
  let lastRequest = 0;
  // With copiers: a small fast READ is held until the next request is read. If another came meanwhile,
  // the held one goes to an idle copier, so page-cache misses of several readers wait for the disk side
  // by side; a lone reader's READ is answered here, with no hand-off.
  const held = Buffer.alloc(JOB_BYTES);
  let heldBytes = 0;
  const serveHeld = (batch: ArrayBuffer[], toCopier: boolean): void => {
    const n = heldBytes;
    if (n === 0) return;
    heldBytes = 0;
    if ((toCopier && handOff(copy, held, n, 0)) || fast.tryServe(held, n)) return;
    batch.push(detach(held, n));
  };
  for (;;) {
    const batch: ArrayBuffer[] = [];
    for (;;) {
      const n = read(fd, req, bufferSize);
      if (n > 0) {
        if (spinMicros > 0) lastRequest = performance.now();
        const size = copy === undefined ? -1 : fastReadSize(req, n);
        if (size >= 0 && size <= HELD_MAX_BYTES) {
          serveHeld(batch, true);
          req.copy(held, 0, 0, n);
          heldBytes = n;
          continue;
        }
        if (handOff(copy, req, n) || fast.tryServe(req, n) || metadata?.tryServe(req, n) === true) continue;
        batch.push(detach(req, n));
        if (batch.length >= MAX_BATCH) break;
        continue;
      }
      const e = n < 0 ? errno() : ENODEV;
      if (e === EINTR || e === ENOENT) continue;
      serveHeld(batch, false);
      if (e === EAGAIN) break;
      if (batch.length > 0) post({ kind: 'requests', batch }, batch);
      finish(copy, e);
    }
    serveHeld(batch, false);
    if (batch.length > 0) {
      post({ kind: 'requests', batch }, batch);
      continue;
    }
    // Busy-poll a moment after a request: a thread woken from poll costs far more than the wait. Not
    // while copiers serve READs side by side: the readers behind them and the copiers need the CPUs
    // (4 random readers on 2 vCPUs: 0.72x -> 0.80x of erofsfuse's IOPS, bench/RESULTS.md).
    if (spinMicros > 0 && (performance.now() - lastRequest) * 1000 < spinMicros && !copiersBusy(copy)) continue;
    fast.drainControl();
    const woke = wait(-1);
    if (woke === 'error' && errno() !== EINTR) finish(copy, errno());
    if (woke === 'wake') finish(copy, 0);
  }
}

/** The device's fd was seen non-blocking (a copier reads it only then: a blocking read would never end). */
let deviceNonBlocking = false;

/**
 * After a job, a copier takes the requests queued on the device itself while there are any (the fd
 * is non-blocking: the reader set it), as many readers side by side each want a READ answered: one
 * hand-off fewer per READ. What it cannot answer goes to the main thread, like the reader's misses.
 */
function takeQueued(d: CopierThreadData, req: Buffer, slot: number): void {
  if (!deviceNonBlocking) {
    if ((fcntl(d.fd, F_GETFL) & O_NONBLOCK) === 0) return;
    deviceNonBlocking = true; // the reader never clears it
  }
  while (Atomics.load(d.copy.state, slot) === CopierState.JOB) {
    const n = read(d.fd, req, d.bufferSize);
    if (n <= 0) return; // EAGAIN, or the device's end: the reader sees that too
    if (!fast.tryServe(req, n)) {
      const ab = detach(req, n);
      post({ kind: 'requests', batch: [ab] }, [ab]);
    }
  }
}

function runCopier(d: CopierThreadData): never {
  const { copy, index } = d;
  const slot = 1 + index;
  const req = Buffer.alloc(Math.max(JOB_BYTES, d.bufferSize));
  Atomics.compareExchange(copy.state, slot, CopierState.STARTING, CopierState.IDLE); // unless told to stop meanwhile
  for (;;) {
    Atomics.wait(copy.state, slot, CopierState.IDLE);
    const v = Atomics.load(copy.state, slot);
    if (v === CopierState.STOP) {
      fast.close();
      process.exit(0);
    }
    if (v !== CopierState.JOB) continue;
    const n = copy.lengths[index]!;
    req.set(copy.jobs.subarray(index * JOB_BYTES, index * JOB_BYTES + n));
    if (!fast.tryServe(req, n)) {
      const ab = detach(req, n);
      post({ kind: 'requests', batch: [ab] }, [ab]);
    }
    takeQueued(d, req, slot);
    Atomics.compareExchange(copy.state, slot, CopierState.JOB, CopierState.IDLE); // unless told to stop meanwhile
  }
}

if (data.role === 'reader') runReader(data);
else runCopier(data);
