/**
 * Syscalls the FUSE session needs beyond src/native/libc.ts: passthrough backing ioctls, a wake-up
 * pipe for the reader thread, and loop devices. Raw results only; callers turn them into errors.
 * The blocking poll/read loop on /dev/fuse lives in the reader worker (src/fuse/reader.ts), which
 * binds its own koffi functions because koffi handles cannot cross threads.
 */
import { closeSync } from 'node:fs';
import { SYS_pidfd_getfd, SYS_pidfd_open, errno, ioctlBuf, ioctlInt, koffi, syscall3 } from './libc.js';
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

/**
 * A copy of another process's fd (pidfd_open + pidfd_getfd; needs ptrace rights over it, e.g. root):
 * how a supervisor takes over the /dev/fuse fd of a worker, or a worker its supervisor's. fd or -errno.
 */
export function pidfdGetfd(pid: number, targetFd: number): number {
  const pidfd = syscall3(SYS_pidfd_open, pid, 0, 0);
  if (pidfd < 0) return -errno();
  try {
    const fd = syscall3(SYS_pidfd_getfd, pidfd, targetFd, 0);
    return fd < 0 ? -errno() : fd;
  } finally {
    closeQuietly(pidfd);
  }
}

// ---- loop devices (read-only, for erofs on block devices) --------------------------------------

const LOOP_CTL_GET_FREE = 0x4c82;
const LOOP_CONFIGURE = 0x4c0a;
const LOOP_CLR_FD = 0x4c01;
const LO_FLAGS_READ_ONLY = 1;
const LO_FLAGS_AUTOCLEAR = 4;
const LO_FLAGS_DIRECT_IO = 16;
/** struct loop_config { u32 fd; u32 block_size; struct loop_info64 info (232 bytes); u64 reserved[8] } */
const LOOP_CONFIG_SIZE = 8 + 232 + 64;
const LOOP_INFO_FLAGS_OFFSET = 8 + 52; // lo_flags inside loop_info64

/** A free loop device number from /dev/loop-control, or -errno. */
export function loopGetFree(controlFd: number): number {
  const r = ioctlInt(controlFd, LOOP_CTL_GET_FREE, 0);
  return r < 0 ? -errno() : r;
}

/** LOOP_CONFIGURE a loop device onto an open backing file (read-only, autoclear). 0 or -errno. */
export function loopConfigure(loopFd: number, backingFd: number, options: { directIo?: boolean } = {}): number {
  return ioctlBuf(loopFd, LOOP_CONFIGURE, loopConfigBuffer(backingFd, options)) < 0 ? -errno() : 0;
}

function loopConfigBuffer(backingFd: number, options: { directIo?: boolean }): Buffer {
  const cfg = Buffer.alloc(LOOP_CONFIG_SIZE);
  cfg.writeUInt32LE(backingFd, 0);
  cfg.writeUInt32LE(0, 4); // block_size: default
  let flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
  if (options.directIo) flags |= LO_FLAGS_DIRECT_IO;
  cfg.writeUInt32LE(flags, LOOP_INFO_FLAGS_OFFSET);
  return cfg;
}

export function loopClear(loopFd: number): number {
  return ioctlInt(loopFd, LOOP_CLR_FD, 0) < 0 ? -errno() : 0;
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

// ---- blocking calls off the main thread ---------------------------------------------------------
// A mount(2) of erofs over FUSE files served by this very process makes the kernel send FUSE requests
// and wait for the answers: it must not block the thread that answers them. koffi's async calls run
// on the libuv threadpool and capture errno there (koffi.errno()).

export interface AsyncResult {
  result: number;
  /** errno when result < 0 */
  errno: number;
}

type AsyncFn = { async: (...args: unknown[]) => void };

function callAsync(fn: AsyncFn, ...args: unknown[]): Promise<AsyncResult> {
  return new Promise((resolve, reject) => {
    fn.async(...args, (err: unknown, result: number) => {
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve({ result, errno: result < 0 ? (koffi.errno() as number) : 0 });
    });
  });
}

const mountFn = libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)') as unknown as AsyncFn;
const umount2Fn = libc.func('int umount2(const char *target, int flags)') as unknown as AsyncFn;
const ioctlBufFn = libc.func('int ioctl(int fd, unsigned long request, void *arg)') as unknown as AsyncFn;

export function mountAsync(source: string, target: string, fstype: string, flags: number, data: string | null): Promise<AsyncResult> {
  return callAsync(mountFn, source, target, fstype, flags, data);
}

export function umount2Async(target: string, flags: number): Promise<AsyncResult> {
  return callAsync(umount2Fn, target, flags);
}

/** LOOP_CONFIGURE off the main thread (the backing file may be on our own FUSE mount). */
export function loopConfigureAsync(loopFd: number, backingFd: number, options: { directIo?: boolean } = {}): Promise<AsyncResult> {
  return callAsync(ioctlBufFn, loopFd, LOOP_CONFIGURE, loopConfigBuffer(backingFd, options));
}
