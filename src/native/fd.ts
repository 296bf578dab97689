/** File descriptors and pipes: the flags, pipe2(2), memfd_create(2), close-on-exec and a close that tolerates a closed fd. */
import { closeSync } from 'node:fs';
import { errno, fcntlInt, libc } from './libc.js';

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

const dup2Raw = libc.func('int dup2(int oldfd, int newfd)') as (oldFd: number, newFd: number) => number;
const fcntlGetfd = libc.func('int fcntl(int fd, int cmd)') as (fd: number, cmd: number) => number;
const F_GETFD = 1;

/**
 * Takes fd number `n` with a copy of `placeholder` if no fd of this process has it (true), so the
 * kernel hands it to nothing else until closed; false when it is in use already.
 */
export function reserveFdNumber(n: number, placeholder: number): boolean {
  if (fcntlGetfd(n, F_GETFD) !== -1) return false;
  return dup2Raw(placeholder, n) === n;
}

const unshareRaw = libc.func('int unshare(int flags)') as (flags: number) => number;
const CLONE_FILES = 0x400;

/**
 * Gives the calling thread a private copy of the process's fd table (unshare CLONE_FILES): from then
 * on the fds it opens or closes are its own, and the other threads' are not its. 0 or a negative errno.
 */
export function unshareFdTable(): number {
  return unshareRaw(CLONE_FILES) === 0 ? 0 : -errno();
}

const memfdCreateRaw = libc.func('int memfd_create(const char *name, unsigned int flags)') as (name: string, flags: number) => number;
const MFD_CLOEXEC = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** An anonymous memory file (close-on-exec), or a negative errno. */
export function memfdCreate(name: string): number {
  const fd = memfdCreateRaw(name, MFD_CLOEXEC);
  return fd < 0 ? -errno() : fd;
}

/** Marks `fd` close-on-exec (an fd inherited from systemd is not); 0 or a negative errno. */
export function setCloexec(fd: number): number {
  return fcntlInt(fd, F_SETFD, FD_CLOEXEC) < 0 ? -errno() : 0;
}
