/**
 * The fast path of a reader thread: answers a READ of an inode with a FastReadSource itself — checks
 * the source's presence (the cache's presence-view protocol, src/cache/presence-view.ts), preads or
 * splices the bytes and writes the reply. Anything it cannot answer (no source, a frame not present,
 * the epoch odd or moved, a short read, any error) is left to the main thread.
 */
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { EPOCH, viewCovers, type PresenceView } from '../cache/presence-view.js';
import { IN_HEADER_SIZE, InHeaderOffset, OUT_HEADER_SIZE, Opcode, READ_IN_COMPAT_SIZE, ReadInOffset, writeOutHeader } from './layout.js';
import { ENODEV, ENOENT } from './errno.js';
import { O_CLOEXEC, close, errno, open, pread, transferAll, write } from './reader-libc.js';
import type { ControlMessage, ThreadData } from './reader-protocol.js';
import { Splicer } from './reader-splice.js';
import type { FastReadSource } from './types.js';

interface Source {
  path: string;
  size: number;
  /** Where the inode's byte 0 is in path. */
  base: number;
  view: PresenceView | undefined;
  served: BigInt64Array | undefined;
  /** This thread's own fd on path, opened at the first READ (-1 before). */
  fd: number;
  /** Frame of the last READ served through `view` (-1 before): the owner hears of the first in each. */
  lastFrame: number;
  /** Every frame of the source's range was present when last looked at (then nothing more is reported). */
  complete: boolean;
}

/**
 * FastReadSource.presence as the cache's PresenceView, so the check is viewCovers itself. The source
 * carries only what the thread needs; the rest is filled from the source (blobId stays unknown here).
 */
function presenceView(source: FastReadSource): PresenceView | undefined {
  const p = source.presence;
  if (p === undefined) return undefined;
  return {
    blobId: '', size: source.size, frameSize: p.frameSize, frameCount: Math.ceil(source.size / p.frameSize),
    dataPath: source.path, bits: p.bits, written: p.written, state: p.state, hits: p.hits,
  };
}

/** An epoch seen before reading (odd: not usable) or after it (must be the same). */
function epochOf(view: PresenceView): number {
  return Atomics.load(view.state, EPOCH);
}

export class FastReads {
  private readonly sources = new Map<number, Source>();
  private readonly fd: number;
  private readonly control: MessagePort;
  private readonly counters: BigInt64Array;
  private readonly replySize: number;
  /** The reply: header, then up to replySize bytes of data. */
  private readonly reply: Buffer;
  private readonly replyData: Buffer;
  private readonly splicer: Splicer;

  /** `onServed`: a READ answered through a presence view, the first in its frame (a sequential reader's progress). */
  constructor(data: ThreadData, private readonly onServed?: (ino: number, offset: number, length: number) => void) {
    this.fd = data.fd;
    this.control = data.control;
    this.counters = data.counters;
    this.replySize = data.replySize;
    this.reply = Buffer.alloc(OUT_HEADER_SIZE + data.replySize);
    this.replyData = this.reply.subarray(OUT_HEADER_SIZE);
    this.splicer = new Splicer(data.spliceMinBytes, data.replySize);
  }

  /** Takes the sources the session posted so far. */
  drainControl(): void {
    for (let m = receiveMessageOnPort(this.control); m; m = receiveMessageOnPort(this.control)) {
      const msg = m.message as ControlMessage;
      const old = this.sources.get(msg.ino);
      if (old !== undefined && old.fd >= 0) close(old.fd);
      const { path, size, served } = msg.source;
      this.sources.set(msg.ino, { path, size, base: msg.source.base ?? 0, view: presenceView(msg.source), served, fd: -1, lastFrame: -1, complete: false });
    }
  }

  has(ino: number): boolean {
    return this.sources.has(ino);
  }

  /** Answers the request in req[0, n) if it is a READ this thread can serve; false = forward it. */
  tryServe(req: Buffer, n: number): boolean {
    try {
      return this.serve(req, n);
    } catch {
      // Never lose a request to a bug here: the main thread answers it (or fails it with an errno).
      return false;
    }
  }

  /** Before the thread exits: fds opened here belong to the process and would outlive it. */
  close(): void {
    for (const s of this.sources.values()) if (s.fd >= 0) close(s.fd);
    this.sources.clear();
    this.splicer.close();
  }

  private serve(req: Buffer, n: number): boolean {
    if (n < IN_HEADER_SIZE + READ_IN_COMPAT_SIZE || req.readUInt32LE(InHeaderOffset.OPCODE) !== Opcode.READ) return false;
    const ino = Number(req.readBigUInt64LE(InHeaderOffset.NODEID));
    let src = this.sources.get(ino);
    if (src === undefined) {
      this.drainControl();
      src = this.sources.get(ino);
      if (src === undefined) return false;
    }
    const offset = Number(req.readBigUInt64LE(IN_HEADER_SIZE + ReadInOffset.OFFSET));
    const size = req.readUInt32LE(IN_HEADER_SIZE + ReadInOffset.SIZE);
    const end = Math.min(src.size, offset + size);
    const len = end > offset ? end - offset : 0;
    if (len > this.replySize) return false;
    const view = src.view;
    let epoch = 0;
    writeOutHeader(this.reply, OUT_HEADER_SIZE + len, 0, req.readBigUInt64LE(InHeaderOffset.UNIQUE));
    const at = src.base + offset;
    if (len > 0) {
      if (view !== undefined) {
        epoch = epochOf(view);
        if ((epoch & 1) !== 0 || !viewCovers(view, at, at + len)) return false;
      }
      if (src.fd < 0) {
        src.fd = open(src.path, O_CLOEXEC);
        if (src.fd < 0) {
          src.fd = -1;
          return false;
        }
      }
      if (this.splicer.fits(at, len)) return this.spliceReply(ino, src, epoch, offset, len);
      if (!this.preadAll(src.fd, at, len) || (view !== undefined && epochOf(view) !== epoch)) return false;
    }
    // Counted first: whoever got the bytes may look at the statistics right away.
    this.count(ino, src, offset, len);
    if (write(this.fd, this.reply, OUT_HEADER_SIZE + len) >= 0) return true;
    // ENOENT: the request was interrupted meanwhile; ENODEV: the connection is gone (the next read
    // says so). Anything else: let the main thread answer (and log) it.
    const e = errno();
    return e === ENOENT || e === ENODEV;
  }

  private preadAll(fd: number, offset: number, len: number): boolean {
    const data = this.replyData;
    return transferAll(len, (done) => pread(fd, done === 0 ? data : data.subarray(done), len - done, offset + done));
  }

  private spliceReply(ino: number, src: Source, epoch: number, offset: number, len: number): boolean {
    if (!this.splicer.fill(this.reply, OUT_HEADER_SIZE, src.fd, src.base + offset, len) || (src.view !== undefined && epochOf(src.view) !== epoch)) {
      this.splicer.reset();
      return false;
    }
    this.count(ino, src, offset, len);
    return this.splicer.drain(this.fd, OUT_HEADER_SIZE + len);
  }

  private count(ino: number, src: Source, offset: number, len: number): void {
    if (src.view !== undefined) {
      Atomics.add(src.view.hits, 0, 1n);
      const frame = Math.floor((src.base + offset) / src.view.frameSize);
      if (frame !== src.lastFrame && len > 0) {
        src.lastFrame = frame;
        // A source whose frames are all present has nothing left to read ahead: the owner need not wake
        // for it (random reads of a complete blob woke the main thread for almost every READ). Once seen
        // complete it stays so for this thread: frames dropped later are misses, which the owner sees.
        if (!src.complete) {
          src.complete = viewCovers(src.view, src.base, src.base + src.size);
          if (!src.complete) this.onServed?.(ino, offset, len);
        }
      }
    }
    if (src.served !== undefined) {
      Atomics.add(src.served, 0, 1n);
      Atomics.add(src.served, 1, BigInt(len));
    }
    Atomics.add(this.counters, 0, 1n);
    Atomics.add(this.counters, 1, BigInt(len));
  }
}
