/** flock(2) through koffi: an advisory whole-file lock that the kernel drops when the process dies. */
import { errno, libc } from './libc.js';
const flockRaw = libc.func('int flock(int fd, int operation)') as (fd: number, operation: number) => number;

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;
const EWOULDBLOCK = 11;

/** Tries to take the lock without waiting: true when taken, false when another open file holds it. */
export function tryFlock(fd: number, operation: number): boolean {
  if (flockRaw(fd, operation | LOCK_NB) === 0) return true;
  const e = errno();
  if (e === EWOULDBLOCK) return false;
  throw Object.assign(new Error(`flock failed (errno ${e})`), { errno: e });
}

export function unflock(fd: number): void {
  flockRaw(fd, LOCK_UN);
}
