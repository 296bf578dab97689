/**
 * pidfd wrappers: the daemon's worker takes duplicates of kernel fds (/dev/fuse, /dev/cachefiles)
 * that its supervisor owns, so a worker crash never closes them.
 */
import { closeSync } from 'node:fs';
import { koffi, libc, syscall3, sysError, SYS_pidfd_getfd, SYS_pidfd_open } from './libc.js';

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

const PR_SET_PDEATHSIG = 1;
const prctl = libc.func('int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)') as
  (option: number, a2: number, a3: number, a4: number, a5: number) => number;

/** Signal `signal` (a number) is sent to this process when the thread that started it ends (prctl PR_SET_PDEATHSIG). */
export function setParentDeathSignal(signal: number): void {
  if (prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0) !== 0) throw sysError('prctl(PR_SET_PDEATHSIG)', `signal ${signal}`, koffi.errno());
}

const pthreadSigmask = libc.func('int pthread_sigmask(int how, const uint8_t *set, uint8_t *oldset)') as
  (how: number, set: Buffer, old: Buffer | null) => number;
const SIG_BLOCK = 0;

/** No signal is delivered to the calling thread any more (the process's other threads take them): 0 or an errno. */
export function blockSignalsOfThisThread(): number {
  return pthreadSigmask(SIG_BLOCK, Buffer.alloc(128, 0xff), null);
}
