/**
 * Syscalls the FUSE session needs beyond src/native/libc.ts: passthrough backing ioctls and a wake-up
 * pipe for the reader thread. Raw results only; callers turn them into errors.
 * The blocking poll/read loop on /dev/fuse lives in the reader worker (src/fuse/reader.ts), which
 * binds its own koffi functions because koffi handles cannot cross threads.
 */
import { closeSync } from 'node:fs';
import { errno, ioctlBuf, koffi } from './libc.js';
import {
  FUSE_BACKING_MAP_SIZE, FUSE_DEV_IOC_BACKING_CLOSE, FUSE_DEV_IOC_BACKING_OPEN,
} from '../fuse/layout.js';

const libc = koffi.load('libc.so.6');

const pipe2Raw = libc.func('int pipe2(void *fds, int flags)') as (fds: Buffer, flags: number) => number;

export const O_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;

/** A pipe [readFd, writeFd], or a negative errno. */
export function pipe2(flags = O_CLOEXEC): [number, number] | number {
  const fds = Buffer.alloc(8);
  return pipe2Raw(fds, flags) === 0 ? [fds.readInt32LE(0), fds.readInt32LE(4)] : -errno();
}

/** FUSE_DEV_IOC_BACKING_OPEN: registers an open file as a passthrough backing; id or -errno. */
export function fuseBackingOpen(devFd: number, backingFd: number): number {
  const map = Buffer.alloc(FUSE_BACKING_MAP_SIZE);
  map.writeInt32LE(backingFd, 0);
  const r = ioctlBuf(devFd, FUSE_DEV_IOC_BACKING_OPEN, map);
  return r < 0 ? -errno() : r;
}

/** FUSE_DEV_IOC_BACKING_CLOSE: 0 or -errno. */
export function fuseBackingClose(devFd: number, backingId: number): number {
  const id = Buffer.alloc(4);
  id.writeUInt32LE(backingId, 0);
  return ioctlBuf(devFd, FUSE_DEV_IOC_BACKING_CLOSE, id) < 0 ? -errno() : 0;
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
