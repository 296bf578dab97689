/**
 * Reads requests from /dev/fuse on a worker thread, so no libuv threadpool thread is ever parked on
 * the device (a pending fs.read there would starve the daemon's fs, DNS and crypto work).
 *
 * The worker sets the fd non-blocking, drains every queued request, posts them as one batch
 * (ArrayBuffers transferred, no copy), then sleeps in poll(2) on the device and a wake-up pipe.
 * Replies are written by the main thread (writes to /dev/fuse never block).
 * The worker is evaluated from a string so it runs the same under tsc output and vitest.
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { writeSync } from 'node:fs';
import { pipe2, closeQuietly } from '../native/fuse.js';
import { OndemandError } from '../util/errors.js';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const koffi = require(workerData.koffiPath);
const libc = koffi.load('libc.so.6');
const read = libc.func('long read(int fd, void *buf, unsigned long count)');
const poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)');
const fcntl = libc.func('int fcntl(int fd, int cmd, ...)');
const errnoLocation = libc.func('int *__errno_location()');
const errno = () => koffi.decode(errnoLocation(), 'int');
const EINTR = 4, EAGAIN = 11, ENOENT = 2, ENODEV = 19;
const F_GETFL = 3, F_SETFL = 4, O_NONBLOCK = 0o4000, POLLIN = 1;
const { fd, wakeFd, bufferSize } = workerData;
fcntl(fd, F_SETFL, 'int', fcntl(fd, F_GETFL) | O_NONBLOCK);
const buf = Buffer.alloc(bufferSize);
const pfds = Buffer.alloc(16);
pfds.writeInt32LE(fd, 0); pfds.writeInt16LE(POLLIN, 4);
pfds.writeInt32LE(wakeFd, 8); pfds.writeInt16LE(POLLIN, 12);
for (;;) {
  const batch = [];
  for (;;) {
    const n = Number(read(fd, buf, bufferSize));
    if (n > 0) { const ab = new ArrayBuffer(n); new Uint8Array(ab).set(buf.subarray(0, n)); batch.push(ab); if (batch.length >= 64) break; continue; }
    const e = n < 0 ? errno() : ENODEV;
    if (e === EINTR || e === ENOENT) continue;
    if (e === EAGAIN) break;
    if (batch.length) parentPort.postMessage({ kind: 'requests', batch }, batch);
    parentPort.postMessage({ kind: 'end', errno: e });
    process.exit(0);
  }
  if (batch.length) { parentPort.postMessage({ kind: 'requests', batch }, batch); continue; }
  pfds.writeInt16LE(0, 6); pfds.writeInt16LE(0, 14);
  const r = poll(pfds, 2, -1);
  if (r < 0 && errno() !== EINTR) { parentPort.postMessage({ kind: 'end', errno: errno() }); process.exit(0); }
  if (pfds.readInt16LE(14) !== 0) { parentPort.postMessage({ kind: 'end', errno: 0 }); process.exit(0); }
}
`;

type WorkerMessage = { kind: 'requests'; batch: ArrayBuffer[] } | { kind: 'end'; errno: number };

export interface ReaderHandlers {
  onRequest(request: Buffer): void;
  /** The reader stopped: errno 0 = asked to stop, 19 (ENODEV) = the connection went away. */
  onEnd(errno: number): void;
}

/** A running reader thread on one /dev/fuse fd. */
export class FuseReader {
  private readonly worker: Worker;
  private readonly wakeRead: number;
  private readonly wakeWrite: number;
  private ended = false;
  private exited = false;
  private readonly done: Promise<void>;

  constructor(fd: number, bufferSize: number, handlers: ReaderHandlers) {
    const pipe = pipe2();
    if (typeof pipe === 'number') throw new OndemandError('EFUSE', `pipe2 failed: errno ${-pipe}`, {}, { errno: -pipe });
    [this.wakeRead, this.wakeWrite] = pipe;
    const koffiPath = createRequire(import.meta.url).resolve('koffi');
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { fd, wakeFd: this.wakeRead, bufferSize, koffiPath } });
    let resolveDone!: () => void;
    this.done = new Promise((resolve) => { resolveDone = resolve; });
    const end = (errno: number): void => {
      if (this.ended) return;
      this.ended = true;
      handlers.onEnd(errno);
    };
    this.worker.on('message', (msg: WorkerMessage) => {
      if (msg.kind === 'requests') for (const ab of msg.batch) handlers.onRequest(Buffer.from(ab));
      else end(msg.errno);
    });
    this.worker.on('error', () => end(5));
    this.worker.on('exit', () => {
      this.exited = true;
      end(0);
      closeQuietly(this.wakeRead);
      closeQuietly(this.wakeWrite);
      resolveDone();
    });
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
  }
}
