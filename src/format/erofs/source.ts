/** Byte sources for the reader: an in-memory image or a file (read with pread). */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/**
 * Synchronous random access to device 0 (the bootstrap). The reader only asks for ranges inside
 * [0, size) and expects exactly `length` bytes back.
 */
export interface ErofsSource {
  size: number;
  read(offset: number, length: number): Buffer;
}

/** A source over a Buffer (reads are zero-copy views). */
export function fromBuffer(buf: Buffer): ErofsSource {
  return { size: buf.length, read: (offset, length) => buf.subarray(offset, offset + length) };
}

/** A source over a file path or an open fd. `close()` closes the fd only if fromFile opened it. */
export function fromFile(fileOrFd: string | number): ErofsSource & { close(): void } {
  const owned = typeof fileOrFd === 'string';
  const fd = owned ? openSync(fileOrFd, 'r') : fileOrFd;
  const size = fstatSync(fd).size;
  return {
    size,
    read(offset, length) {
      const out = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, out, done, length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
      return done === length ? out : out.subarray(0, done);
    },
    close() {
      if (owned) closeSync(fd);
    },
  };
}
