/**
 * pidfd wrappers: the daemon's worker takes duplicates of kernel fds (/dev/fuse, /dev/cachefiles)
 * that its supervisor owns, so a worker crash never closes them.
 */
import { closeSync } from 'node:fs';
import { koffi, syscall3, sysError, SYS_pidfd_getfd, SYS_pidfd_open } from './libc.js';

/** A pidfd for a live process (needs no privilege for one's own parent). */
export function pidfdOpen(pid: number): number {
  const fd = Number(syscall3(SYS_pidfd_open, pid, 0, 0));
  if (fd < 0) throw sysError('pidfd_open', `pid ${pid}`, koffi.errno());
  return fd;
}

/** A duplicate, in this process, of fd `targetFd` of the process behind `pidfd` (needs ptrace rights). */
export function pidfdGetfd(pidfd: number, targetFd: number): number {
  const fd = Number(syscall3(SYS_pidfd_getfd, pidfd, targetFd, 0));
  if (fd < 0) throw sysError('pidfd_getfd', `fd ${targetFd}`, koffi.errno());
  return fd;
}

/** A duplicate, in this process, of fd `targetFd` of process `pid` (pidfd_open + pidfd_getfd). */
export function fdOfProcess(pid: number, targetFd: number): number {
  const pidfd = pidfdOpen(pid);
  try {
    return pidfdGetfd(pidfd, targetFd);
  } finally {
    closeSync(pidfd);
  }
}
