/**
 * Splice for a reader thread: a large READ reply goes file -> pipe -> /dev/fuse, so the kernel copies
 * the source file's pages straight into the request's pages (no copy through the thread's memory).
 * The pipe must hold the whole reply (header + the data's pages): beyond /proc/sys/fs/pipe-max-size
 * only with CAP_SYS_RESOURCE, so without it the largest READs use pread + write instead.
 */
import { PAGE_SIZE } from './layout.js';
import { EINTR, ENODEV, ENOENT } from './errno.js';
import { O_CLOEXEC, pipe2 } from '../native/fd.js';
import { F_SETPIPE_SZ, close, errno, fcntl, splice, transferAll, write } from './reader-libc.js';

interface Pipe {
  r: number;
  w: number;
  /** Pages the pipe holds (one per buffer it accepts). */
  slots: number;
}

export class Splicer {
  private pipe: Pipe | undefined;
  private readonly fileOffset = Buffer.alloc(8);

  /** minBytes: replies from this size up are spliced (0 = never); replySize: the largest reply payload. */
  constructor(private readonly minBytes: number, private readonly replySize: number) {
    this.pipe = this.openPipe();
  }

  /** Whether a reply of len bytes read at offset should and can go through the pipe. */
  fits(offset: number, len: number): boolean {
    // One slot per page touched in the file, one for the header.
    return this.pipe !== undefined && len >= this.minBytes && Math.ceil(((offset % PAGE_SIZE) + len) / PAGE_SIZE) + 1 <= this.pipe.slots;
  }

  /**
   * Puts header (a fuse_out_header) and then [offset, offset + len) of srcFd into the pipe. False:
   * nothing usable in the pipe (call reset()). Only after fits() said yes.
   */
  fill(header: Buffer, headerLen: number, srcFd: number, offset: number, len: number): boolean {
    const pipe = this.pipe!;
    if (write(pipe.w, header, headerLen) !== headerLen) return false;
    return transferAll(len, (done) => {
      this.fileOffset.writeBigInt64LE(BigInt(offset + done));
      return splice(srcFd, this.fileOffset, pipe.w, null, len - done, 0);
    });
  }

  /**
   * Moves the filled reply (total bytes) to the device. True: written, or the request is gone
   * (ENOENT: interrupted; ENODEV: the connection ended). False: let the main thread answer it.
   */
  drain(devFd: number, total: number): boolean {
    const pipe = this.pipe!;
    for (;;) {
      const r = splice(pipe.r, null, devFd, null, total, 0);
      if (r === total) return true;
      if (r < 0 && errno() === EINTR) continue;
      const e = r < 0 ? errno() : 0;
      this.reset();
      return e === ENOENT || e === ENODEV;
    }
  }

  /** Whatever a failed reply left in the pipe must never reach the device: start over with a new pipe. */
  reset(): void {
    this.close();
    this.pipe = this.openPipe();
  }

  /** Before the thread exits: fds belong to the process and would outlive the thread. */
  close(): void {
    if (this.pipe === undefined) return;
    close(this.pipe.r);
    close(this.pipe.w);
    this.pipe = undefined;
  }

  private openPipe(): Pipe | undefined {
    if (this.minBytes <= 0) return undefined;
    const fds = pipe2(O_CLOEXEC);
    if (typeof fds === 'number') return undefined;
    const pipe = { r: fds[0], w: fds[1], slots: 0 };
    // A slot per page of data and one for the header: the whole largest reply if allowed, else the
    // most an unprivileged pipe may hold (/proc/sys/fs/pipe-max-size).
    for (const bytes of [this.replySize + 2 * PAGE_SIZE, 1 << 20]) {
      const got = fcntl(pipe.w, F_SETPIPE_SZ, bytes);
      if (got > 0) {
        pipe.slots = Math.floor(got / PAGE_SIZE);
        break;
      }
    }
    if (pipe.slots < 2) {
      close(pipe.r);
      close(pipe.w);
      return undefined;
    }
    return pipe;
  }
}
