/**
 * read(2) and poll(2) for threads that park on a kernel fd (fanotify groups, /dev/fuse): raw results,
 * -1 and errno() on failure.
 */
import { libc } from './libc.js';

export const POLLIN = 1;
/** sizeof(struct pollfd): fd s32, events s16, revents s16. */
export const POLLFD_SIZE = 8;

/** `buf`: a Buffer, or a pointer koffi returned (e.g. into a mapping). */
export const read = libc.func('long read(int fd, void *buf, unsigned long count)') as (fd: number, buf: Buffer | ExternalPointer, count: number) => number;
/** A pointer koffi returned: opaque here, passed back to C as it is. */
export type ExternalPointer = object;
/** fds: struct pollfd[nfds]. */
export const poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)') as (fds: Buffer, nfds: number, timeout: number) => number;

/**
 * poll(2) on a kernel fd and a wake-up pipe: resolves to 'wake' once the pipe is readable (its thread
 * should end), 'error' with errno() set on failure, else 'ready' (readable, or the timeout passed: a
 * thread parked in native code must wake now and then, or it would hold process.exit()).
 */
export function pollerOf(fd: number, wakeFd: number): (timeoutMs: number) => 'ready' | 'wake' | 'error' {
  const pfds = Buffer.alloc(2 * POLLFD_SIZE);
  pfds.writeInt32LE(fd, 0);
  pfds.writeInt16LE(POLLIN, 4);
  pfds.writeInt32LE(wakeFd, POLLFD_SIZE);
  pfds.writeInt16LE(POLLIN, POLLFD_SIZE + 4);
  return (timeoutMs) => {
    pfds.writeInt16LE(0, 6);
    pfds.writeInt16LE(0, POLLFD_SIZE + 6);
    if (poll(pfds, 2, timeoutMs) < 0) return 'error';
    return pfds.readInt16LE(POLLFD_SIZE + 6) !== 0 ? 'wake' : 'ready';
  };
}
