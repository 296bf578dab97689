/** File descriptors and pipes: the flags, pipe2(2) and a close that tolerates a closed fd. */
import { closeSync } from 'node:fs';
import { errno, libc } from './libc.js';

export const O_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;

const pipe2Raw = libc.func('int pipe2(void *fds, int flags)') as (fds: Buffer, flags: number) => number;

/** A pipe [readFd, writeFd], or a negative errno. */
export function pipe2(flags = O_CLOEXEC): [number, number] | number {
  const fds = Buffer.alloc(8);
  return pipe2Raw(fds, flags) === 0 ? [fds.readInt32LE(0), fds.readInt32LE(4)] : -errno();
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
