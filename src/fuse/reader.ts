/**
 * Reads requests from /dev/fuse on a worker thread, so no libuv threadpool thread is ever parked on
 * the device (a pending fs.read there would starve the daemon's fs, DNS and crypto work).
 *
 * The worker sets the fd non-blocking, drains every queued request, posts them as one batch
 * (ArrayBuffers transferred, no copy), then sleeps in poll(2) on the device and a wake-up pipe.
 *
 * Fast path: a READ of an inode that has a FastReadSource (sent by the session over a MessagePort)
 * is answered on the worker itself — checks the source's presence bits, preads into a reusable
 * buffer and writes the reply — with no hand-off to the main thread or the libuv pool. Anything the
 * source cannot answer (a frame not present, the epoch odd or moved, a short pread, any error) is
 * forwarded to the main thread like every other request, where the filesystem (and its cache) serve
 * it. Other replies are written by the main thread (writes to /dev/fuse never block).
 * The worker is evaluated from a string so it runs the same under tsc output and vitest.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { writeSync } from 'node:fs';
import { pipe2, closeQuietly } from '../native/fuse.js';
import { OndemandError } from '../util/errors.js';
import type { FastReadSource } from './types.js';

const WORKER_SOURCE = `
const { parentPort, workerData, receiveMessageOnPort } = require('node:worker_threads');
const koffi = require(workerData.koffiPath);
const libc = koffi.load('libc.so.6');
const read = libc.func('long read(int fd, void *buf, unsigned long count)');
const write = libc.func('long write(int fd, const void *buf, unsigned long count)');
const pread = libc.func('long pread(int fd, void *buf, unsigned long count, int64_t offset)');
const open = libc.func('int open(const char *path, int flags)');
const close = libc.func('int close(int fd)');
const poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)');
const fcntl = libc.func('int fcntl(int fd, int cmd, ...)');
const pipe2 = libc.func('int pipe2(void *fds, int flags)');
const splice = libc.func('long splice(int fd_in, void *off_in, int fd_out, void *off_out, unsigned long len, unsigned int flags)');
const errnoLocation = libc.func('int *__errno_location()');
const errno = () => koffi.decode(errnoLocation(), 'int');
const EINTR = 4, EAGAIN = 11, ENOENT = 2, ENODEV = 19;
const F_GETFL = 3, F_SETFL = 4, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000, POLLIN = 1;
const OP_READ = 15, IN_HEADER = 40, OUT_HEADER = 16;
/** A READ request is 80 bytes; a copier's mailbox holds one. */
const JOB_BYTES = 128;
const F_SETPIPE_SZ = 1031;
const { role, fd, wakeFd, bufferSize, replySize, control, counters, spinMicros, copy, spliceMinBytes } = workerData;
if (role === 'reader') fcntl(fd, F_SETFL, 'int', fcntl(fd, F_GETFL) | O_NONBLOCK);
const buf = Buffer.alloc(role === 'reader' ? bufferSize : JOB_BYTES);
const reply = Buffer.alloc(OUT_HEADER + replySize);
const replyData = reply.subarray(OUT_HEADER);
const pfds = Buffer.alloc(16);
if (role === 'reader') {
  pfds.writeInt32LE(fd, 0); pfds.writeInt16LE(POLLIN, 4);
  pfds.writeInt32LE(wakeFd, 8); pfds.writeInt16LE(POLLIN, 12);
}
/** ino -> { path, size, presence?, served?, fd } */
const sources = new Map();

function drainControl() {
  for (let m = receiveMessageOnPort(control); m; m = receiveMessageOnPort(control)) {
    const msg = m.message;
    if (msg.kind === 'source') {
      const old = sources.get(msg.ino);
      if (old && old.fd >= 0) close(old.fd);
      sources.set(msg.ino, { ...msg.source, fd: -1 });
    }
  }
}

/** Before the thread exits: fds opened here belong to the process and would outlive it. */
function closeSources() {
  for (const s of sources.values()) if (s.fd >= 0) close(s.fd);
  sources.clear();
  if (splicePipe !== null) { close(splicePipe.r); close(splicePipe.w); splicePipe = null; }
}

function covered(p, offset, end) {
  const last = Math.floor((end - 1) / p.frameSize);
  for (let i = Math.floor(offset / p.frameSize); i <= last; i++) {
    if ((Atomics.load(p.bits, i >> 3) & (1 << (i & 7))) === 0) return false;
  }
  return true;
}

/**
 * Copiers: helper threads that answer large fast READs so several are copied at once (one thread
 * spends ~0.3 ms per MiB in pread + write). copy.state[1 + i]: 0 = copier i idle, 1 = it holds a job
 * (the request bytes in copy.jobs[i * JOB_BYTES ...], its length in copy.lengths[i]), 2 = stop.
 * They reply on the same fd (the kernel matches replies by unique, not by thread).
 */
function handOff(n) {
  if (copy === undefined || n > JOB_BYTES || buf.readUInt32LE(4) !== OP_READ || buf.readUInt32LE(IN_HEADER + 16) < copy.minBytes) return false;
  if (!sources.has(Number(buf.readBigUInt64LE(16)))) return false;
  for (let i = 0; i < copy.count; i++) {
    if (Atomics.load(copy.state, 1 + i) !== 0) continue;
    copy.jobs.set(buf.subarray(0, n), i * JOB_BYTES);
    copy.lengths[i] = n;
    Atomics.store(copy.state, 1 + i, 1);
    Atomics.notify(copy.state, 1 + i);
    return true;
  }
  return false;
}

/**
 * Splice: large replies go file -> pipe -> /dev/fuse, so the kernel copies the cache file's pages
 * straight into the request's pages (no copy through this thread's memory). The pipe must hold the
 * whole reply (header + max_pages pages): beyond /proc/sys/fs/pipe-max-size only with
 * CAP_SYS_RESOURCE, so without it large READs use pread + write.
 */
let splicePipe = null;
const spliceOff = Buffer.alloc(8);
function openSplicePipe() {
  if (spliceMinBytes <= 0) return null;
  const fds = Buffer.alloc(8);
  if (pipe2(fds, O_CLOEXEC) !== 0) return null;
  const p = { r: fds.readInt32LE(0), w: fds.readInt32LE(4), slots: 0 };
  // A slot per page of data and one for the header: the whole largest reply if allowed, else the
  // most an unprivileged pipe may hold (/proc/sys/fs/pipe-max-size).
  for (const bytes of [replySize + 2 * 4096, 1 << 20]) {
    const got = fcntl(p.w, F_SETPIPE_SZ, 'int', bytes);
    if (got > 0) { p.slots = Math.floor(got / 4096); break; }
  }
  if (p.slots < 2) { close(p.r); close(p.w); return null; }
  return p;
}
/** Whether a reply of len bytes at offset fits the pipe (one slot per page touched, one for the header). */
function spliceFits(offset, len) {
  return splicePipe !== null && len >= spliceMinBytes && Math.ceil(((offset % 4096) + len) / 4096) + 1 <= splicePipe.slots;
}
function dropSplicePipe() {
  // Whatever is left in it (a failed reply) must never reach the device: start over with a new pipe.
  if (splicePipe !== null) { close(splicePipe.r); close(splicePipe.w); }
  splicePipe = openSplicePipe();
}
/** Moves src[offset, offset+len) after the 16-byte header in reply into the pipe; false = nothing usable in it. */
function spliceIn(src, offset, len) {
  if (Number(write(splicePipe.w, reply, OUT_HEADER)) !== OUT_HEADER) return false;
  let got = 0;
  while (got < len) {
    spliceOff.writeBigInt64LE(BigInt(offset + got));
    const r = Number(splice(src.fd, spliceOff, splicePipe.w, null, len - got, 0));
    if (r > 0) { got += r; continue; }
    if (r < 0 && errno() === EINTR) continue;
    return false;
  }
  return true;
}

/** Answers the READ in buf[0..n) from its source; false = forward it to the main thread. */
function serveRead(n) {
  if (n < IN_HEADER + 24 || buf.readUInt32LE(4) !== OP_READ) return false;
  const ino = Number(buf.readBigUInt64LE(16));
  let src = sources.get(ino);
  if (src === undefined) { drainControl(); src = sources.get(ino); if (src === undefined) return false; }
  const offset = Number(buf.readBigUInt64LE(IN_HEADER + 8));
  const size = buf.readUInt32LE(IN_HEADER + 16);
  const end = Math.min(src.size, offset + size);
  const len = end > offset ? end - offset : 0;
  if (len > replySize) return false;
  const p = src.presence;
  let epoch = 0;
  reply.writeUInt32LE(OUT_HEADER + len, 0);
  reply.writeInt32LE(0, 4);
  reply.writeBigUInt64LE(buf.readBigUInt64LE(8), 8);
  if (len > 0) {
    if (p !== undefined) {
      epoch = Atomics.load(p.state, 0);
      if ((epoch & 1) !== 0 || !covered(p, offset, end)) return false;
    }
    if (src.fd < 0) {
      src.fd = open(src.path, O_CLOEXEC);
      if (src.fd < 0) { src.fd = -1; return false; }
    }
    if (spliceFits(offset, len)) return spliceRead(src, p, epoch, offset, len);
    let got = 0;
    while (got < len) {
      const r = Number(pread(src.fd, got === 0 ? replyData : replyData.subarray(got), len - got, offset + got));
      if (r > 0) { got += r; continue; }
      if (r < 0 && errno() === EINTR) continue;
      return false;
    }
    if (p !== undefined && Atomics.load(p.state, 0) !== epoch) return false;
  }
  // Counted first: whoever got the bytes may look at the statistics right away.
  count(src, p, len);
  if (Number(write(fd, reply, OUT_HEADER + len)) >= 0) return true;
  return writeFailed();
}

function spliceRead(src, p, epoch, offset, len) {
  if (!spliceIn(src, offset, len) || (p !== undefined && Atomics.load(p.state, 0) !== epoch)) {
    dropSplicePipe();
    return false;
  }
  count(src, p, len);
  for (;;) {
    const r = Number(splice(splicePipe.r, null, fd, null, OUT_HEADER + len, 0));
    if (r === OUT_HEADER + len) return true;
    if (r < 0 && errno() === EINTR) continue;
    const e = r < 0 ? errno() : 0;
    dropSplicePipe();
    return e !== 0 ? e === ENOENT || e === ENODEV : false;
  }
}

/**
 * ENOENT: the request was interrupted meanwhile; ENODEV: the connection is gone (the next read says
 * so). Anything else: let the main thread answer (and log) it.
 */
function writeFailed() {
  const e = errno();
  return e === ENOENT || e === ENODEV;
}

function count(src, p, len) {
  if (p !== undefined) Atomics.add(p.hits, 0, 1n);
  if (src.served !== undefined) { Atomics.add(src.served, 0, 1n); Atomics.add(src.served, 1, BigInt(len)); }
  Atomics.add(counters, 0, 1n);
  Atomics.add(counters, 1, BigInt(len));
}

function finish(msg) {
  closeSources();
  if (copy !== undefined) {
    // A job not yet taken is dropped: the connection is gone, or a successor gets it resent.
    for (let i = 0; i < copy.count; i++) { Atomics.store(copy.state, 1 + i, 2); Atomics.notify(copy.state, 1 + i); }
  }
  parentPort.postMessage(msg);
  process.exit(0);
}

function forward(n) {
  const ab = new ArrayBuffer(n);
  new Uint8Array(ab).set(buf.subarray(0, n));
  return ab;
}

function tryServe(n) {
  try {
    return serveRead(n);
  } catch {
    // Never lose a request to a bug here: the main thread answers it (or fails it with an errno).
    return false;
  }
}

splicePipe = openSplicePipe();

if (role === 'copier') {
  const slot = 1 + workerData.index;
  for (;;) {
    Atomics.wait(copy.state, slot, 0);
    const v = Atomics.load(copy.state, slot);
    if (v === 2) { closeSources(); process.exit(0); }
    if (v !== 1) continue;
    const n = copy.lengths[workerData.index];
    buf.set(copy.jobs.subarray(workerData.index * JOB_BYTES, workerData.index * JOB_BYTES + n));
    if (!tryServe(n)) { const ab = forward(n); parentPort.postMessage({ kind: 'requests', batch: [ab] }, [ab]); }
    Atomics.compareExchange(copy.state, slot, 1, 0); // unless told to stop meanwhile
  }
}

let lastRequest = 0;
for (;;) {
  const batch = [];
  for (;;) {
    const n = Number(read(fd, buf, bufferSize));
    if (n > 0) {
      if (spinMicros > 0) lastRequest = performance.now();
      if (handOff(n) || tryServe(n)) continue;
      batch.push(forward(n));
      if (batch.length >= 64) break;
      continue;
    }
    const e = n < 0 ? errno() : ENODEV;
    if (e === EINTR || e === ENOENT) continue;
    if (e === EAGAIN) break;
    if (batch.length) parentPort.postMessage({ kind: 'requests', batch }, batch);
    finish({ kind: 'end', errno: e });
  }
  if (batch.length) { parentPort.postMessage({ kind: 'requests', batch }, batch); continue; }
  // Busy-poll a moment after a request: the next one of a stream usually follows within microseconds,
  // and a thread woken from poll costs far more than that.
  if (spinMicros > 0 && (performance.now() - lastRequest) * 1000 < spinMicros) continue;
  drainControl();
  pfds.writeInt16LE(0, 6); pfds.writeInt16LE(0, 14);
  const r = poll(pfds, 2, -1);
  if (r < 0 && errno() !== EINTR) finish({ kind: 'end', errno: errno() });
  if (pfds.readInt16LE(14) !== 0) finish({ kind: 'end', errno: 0 });
}
`;

type WorkerMessage = { kind: 'requests'; batch: ArrayBuffer[] } | { kind: 'end'; errno: number };

export interface ReaderHandlers {
  onRequest(request: Buffer): void;
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
}

/** Fast READs from this size up are spliced unless told otherwise (ReaderOptions.spliceMinBytes). */
export const DEFAULT_SPLICE_MIN_BYTES = 64 * 1024;

/** A running reader thread on one /dev/fuse fd. */
export class FuseReader {
  private readonly worker: Worker;
  private readonly copiers: { worker: Worker; control: MessageChannel }[] = [];
  private readonly wakeRead: number;
  private readonly wakeWrite: number;
  private readonly control: MessageChannel;
  /** [0] READs, [1] bytes answered on the worker. */
  private readonly counters = new BigInt64Array(new SharedArrayBuffer(16));
  private ended = false;
  private exited = false;
  private readonly done: Promise<void>;

  constructor(fd: number, options: ReaderOptions, handlers: ReaderHandlers) {
    const pipe = pipe2();
    if (typeof pipe === 'number') throw new OndemandError('EFUSE', `pipe2 failed: errno ${-pipe}`, {}, { errno: -pipe });
    [this.wakeRead, this.wakeWrite] = pipe;
    this.control = new MessageChannel();
    const koffiPath = createRequire(import.meta.url).resolve('koffi');
    const count = Math.max(0, options.copyThreads ?? 0);
    const copy = count === 0 ? undefined : {
      count,
      minBytes: options.copyMinBytes ?? 128 * 1024,
      state: new Int32Array(new SharedArrayBuffer(4 * (1 + count))), // [0] unused
      lengths: new Int32Array(new SharedArrayBuffer(4 * count)),
      jobs: new Uint8Array(new SharedArrayBuffer(128 * count)),
    };
    const common = { fd, replySize: options.replySize, koffiPath, counters: this.counters, copy, spliceMinBytes: options.spliceMinBytes ?? DEFAULT_SPLICE_MIN_BYTES };
    let resolveDone!: () => void;
    this.done = new Promise((resolve) => { resolveDone = resolve; });
    const end = (errno: number): void => {
      if (this.ended) return;
      this.ended = true;
      handlers.onEnd(errno);
    };
    const onMessage = (msg: WorkerMessage): void => {
      if (msg.kind === 'requests') for (const ab of msg.batch) handlers.onRequest(Buffer.from(ab));
      else end(msg.errno);
    };
    const exits: Promise<void>[] = [];
    for (let index = 0; index < count; index++) {
      const control = new MessageChannel();
      const worker = new Worker(WORKER_SOURCE, {
        eval: true, workerData: { ...common, role: 'copier', index, control: control.port2 }, transferList: [control.port2],
      });
      worker.on('message', onMessage);
      worker.on('error', () => undefined); // its job (if any) stays unanswered; the reader serves on alone
      exits.push(new Promise((resolve) => worker.on('exit', () => { control.port1.close(); resolve(); })));
      this.copiers.push({ worker, control });
    }
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        ...common, role: 'reader', wakeFd: this.wakeRead, bufferSize: options.bufferSize, spinMicros: options.spinMicros ?? 0,
        control: this.control.port2,
      },
      transferList: [this.control.port2],
    });
    this.worker.on('message', onMessage);
    this.worker.on('error', () => {
      // The reader tells the copiers to stop only on its normal way out.
      if (copy) for (let i = 0; i < count; i++) { Atomics.store(copy.state, 1 + i, 2); Atomics.notify(copy.state, 1 + i); }
      end(5);
    });
    exits.push(new Promise((resolve) => this.worker.on('exit', () => {
      this.exited = true;
      end(0);
      this.control.port1.close();
      resolve();
    })));
    void Promise.all(exits).then(() => {
      closeQuietly(this.wakeRead);
      closeQuietly(this.wakeWrite);
      resolveDone();
    });
  }

  /**
   * From now on READs of `ino` may be answered on the worker from `source`. Posted before the reply
   * that lets the kernel send such READs (OPEN), so the worker finds it when the first one arrives.
   */
  addSource(ino: number, source: FastReadSource): void {
    if (this.exited) return;
    for (const c of this.copiers) c.control.port1.postMessage({ kind: 'source', ino, source });
    this.control.port1.postMessage({ kind: 'source', ino, source });
  }

  /** READs and bytes the worker answered itself. */
  served(): { reads: number; bytes: number } {
    return { reads: Number(Atomics.load(this.counters, 0)), bytes: Number(Atomics.load(this.counters, 1)) };
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
    this.worker.unref();
    this.control.port1.unref();
    for (const c of this.copiers) {
      c.worker.unref();
      c.control.port1.unref();
    }
  }
}
