/**
 * The libc calls of the reader threads, declared on src/native's libc handle (each thread evaluates
 * its own copy of that module, so the handle is the thread's own). Raw results: -1 and errno() on
 * failure. Imported only by reader-thread modules.
 */
import { O_CLOEXEC, O_NONBLOCK } from '../native/fd.js';
import { errno, libc } from '../native/libc.js';
import { read } from '../native/poll.js';
import { EINTR } from './errno.js';

export { O_CLOEXEC, O_NONBLOCK, errno, read };

export const F_GETFL = 3;
export const F_SETFL = 4;
export const F_SETPIPE_SZ = 1031;

export const write = libc.func('long write(int fd, const void *buf, unsigned long count)') as (fd: number, buf: Buffer, count: number) => number;
export const pread = libc.func('long pread(int fd, void *buf, unsigned long count, int64_t offset)') as (
  fd: number, buf: Buffer, count: number, offset: number,
) => number;
export const open = libc.func('int open(const char *path, int flags)') as (path: string, flags: number) => number;
export const close = libc.func('int close(int fd)') as (fd: number) => number;
/** offIn/offOut: a loff_t (8-byte buffer) or null for pipes. */
export const splice = libc.func('long splice(int fd_in, void *off_in, int fd_out, void *off_out, unsigned long len, unsigned int flags)') as (
  fdIn: number, offIn: Buffer | null, fdOut: number, offOut: Buffer | null, len: number, flags: number,
) => number;

const fcntlVariadic = libc.func('int fcntl(int fd, int cmd, ...)');

/** fcntl with an int argument (ignored by commands that take none). */
export function fcntl(fd: number, cmd: number, arg = 0): number {
  return fcntlVariadic(fd, cmd, 'int', arg) as number;
}

/**
 * Repeats a partial transfer until len bytes are moved: step(done) makes one call and returns its
 * result. EINTR is retried; false on any other error or on end of file.
 */
export function transferAll(len: number, step: (done: number) => number): boolean {
  let got = 0;
  while (got < len) {
    const r = step(got);
    if (r > 0) {
      got += r;
      continue;
    }
    if (r < 0 && errno() === EINTR) continue;
    return false;
  }
  return true;
}
