/**
 * Callback-style fs calls wrapped in bare promises: the cache's hot paths (one pread per warm read)
 * avoid FileHandle's extra layers. Plus group commit for fdatasync, and the cache's I/O errors.
 */
import { fdatasync, fstatSync, ftruncate, read, readSync, writev } from 'node:fs';
import { CacheError, errorText, systemCode } from '../util/errors.js';

/** Reads exactly `length` bytes at `position` into a new buffer (short only at end of file). */
export function pread(fd: number, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      read(fd, buf, done, length - done, position + done, (err, n) => {
        if (err) return reject(err);
        if (n === 0 || done + n === length) return resolve(n === 0 ? buf.subarray(0, done) : buf);
        step(done + n);
      });
    };
    step(0);
  });
}

/** Reads exactly `length` bytes at `position` into `buf` at `at`; a short file is an error. */
export function preadInto(fd: number, buf: Buffer, at: number, length: number, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      if (done === length) return resolve();
      read(fd, buf, at + done, length - done, position + done, (err, n) => {
        if (err) return reject(err);
        if (n === 0) return reject(Object.assign(new Error(`short read at ${position + done}`), { code: 'EIO' }));
        step(done + n);
      });
    };
    step(0);
  });
}

/** Writes all buffers contiguously at `position`, retrying short writes. */
export function pwritev(fd: number, buffers: Buffer[], position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (bufs: Buffer[], pos: number): void => {
      writev(fd, bufs, pos, (err, n) => {
        if (err) return reject(err);
        let left = n;
        const rest: Buffer[] = [];
        for (const b of bufs) {
          if (left >= b.length) left -= b.length;
          else {
            rest.push(left > 0 ? b.subarray(left) : b);
            left = 0;
          }
        }
        if (rest.length === 0) return resolve();
        step(rest, pos + n);
      });
    };
    step(buffers, position);
  });
}

/** Bytes a write of `n` bytes allocates: whole 4 KiB blocks. */
export const roundUpToBlock = (n: number): number => Math.ceil(n / 4096) * 4096;

export function ftruncateAsync(fd: number, len: number): Promise<void> {
  return new Promise((resolve, reject) => ftruncate(fd, len, (err) => (err ? reject(err) : resolve())));
}

export function fdatasyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/**
 * Group commit: `sync()` resolves after an fdatasync that started after the call. Callers arriving
 * while one runs share the next one, so N concurrent batches cost at most two syncs, not N.
 */
export class GroupSync {
  private running: Promise<void> | null = null;
  private next: Promise<void> | null = null;
  syncs = 0;

  constructor(private readonly fd: number) {}

  sync(): Promise<void> {
    if (!this.running) return this.start();
    if (!this.next) {
      this.next = this.running.then(
        () => this.start(),
        () => this.start(),
      );
      this.next.catch(() => {});
    }
    return this.next;
  }

  private start(): Promise<void> {
    this.next = null;
    this.syncs++;
    const p = fdatasyncAsync(this.fd);
    this.running = p;
    const clear = (): void => {
      if (this.running === p) this.running = null;
    };
    p.then(clear, clear);
    return p;
  }
}

/** The whole file behind `fd`, read with pread (stops early if it shrank). */
export function readWhole(fd: number): Buffer {
  const size = fstatSync(fd).size;
  const buf = Buffer.alloc(size);
  let done = 0;
  while (done < size) {
    const n = readSync(fd, buf, done, size - done, done);
    if (n === 0) break;
    done += n;
  }
  return buf.subarray(0, done);
}

/** A CacheError for a failed file operation, naming ENOSPC/EIO plainly. */
export function cacheIoError(err: unknown, what: string, ctx: { blob?: string; path?: string }): CacheError {
  const code = systemCode(err);
  if (code === 'ENOSPC') {
    return new CacheError(`cache disk full (ENOSPC): cannot ${what} in ${ctx.path ?? 'the cache directory'}`, ctx, { cause: err, errno: 28 });
  }
  if (code === 'EDQUOT') {
    return new CacheError(`cache disk quota exceeded (EDQUOT): cannot ${what}`, ctx, { cause: err, errno: 122 });
  }
  return new CacheError(`cannot ${what}: ${errorText(err)}${code ? ` (${code})` : ''}`, ctx, { cause: err });
}
