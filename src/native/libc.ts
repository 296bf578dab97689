/**
 * The thin syscall layer: libc functions Node lacks, through koffi. No logic here — callers in
 * src/fuse, src/transport and src/mount turn return codes into typed errors.
 * Every function returns the raw result; on -1 read `errno()`. libc is loaded here once; the other
 * files of src/native declare their functions on this `libc`.
 */
import koffi from 'koffi';
import os from 'node:os';

export const libc = koffi.load('libc.so.6');

/** A libc function that can also run on the libuv pool (`.async(...args, callback)`). */
export type WithAsync<A extends unknown[], R> = ((...args: A) => R) & {
  async: (...args: [...A, (err: unknown, result: R) => void]) => void;
};

export const mount = libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)') as WithAsync<
  [source: string | null, target: string, fstype: string | null, flags: number, data: string | null], number
>;

export const umount2 = libc.func('int umount2(const char *target, int flags)') as WithAsync<[target: string, flags: number], number>;

/** ioctl with an integer argument. */
export const ioctlInt = libc.func('int ioctl(int fd, unsigned long request, long arg)') as (fd: number, request: number, arg: number) => number;

/** ioctl with a pointer to a caller-owned buffer (in/out). */
export const ioctlBuf = libc.func('int ioctl(int fd, unsigned long request, _Inout_ uint8_t *arg)') as (fd: number, request: number, arg: Buffer) => number;

/** fcntl with an integer argument (F_GETPIPE_SZ, ...). */
export const fcntlInt = libc.func('int fcntl(int fd, int cmd, int arg)') as (fd: number, cmd: number, arg: number) => number;

/** Raw syscall with up to three integer arguments (pidfd_open, pidfd_getfd, ...). */
export const syscall3 = libc.func('long syscall(long number, long a, long b, long c)') as (nr: number, a: number, b: number, c: number) => number;

const errnoLocation = libc.func('int *__errno_location()');

/** errno of the last failed call on this thread. */
export function errno(): number {
  return koffi.decode(errnoLocation(), 'int') as number;
}

export const MS_RDONLY = 1;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MNT_DETACH = 2;
export const MNT_FORCE = 1;

export const SYS_pidfd_open = 434;
export const SYS_pidfd_getfd = 438;

/** A Node-like system error for errno `errnoValue`, naming the call and what it was called on. */
export function sysError(call: string, what: string, errnoValue: number): NodeJS.ErrnoException {
  const name = Object.entries(os.constants.errno).find(([, v]) => v === errnoValue)?.[0] ?? `errno ${errnoValue}`;
  const err = new Error(`${call} ${what}: ${name}`) as NodeJS.ErrnoException;
  err.code = name;
  err.errno = errnoValue;
  err.syscall = call;
  err.path = what;
  return err;
}

export { koffi };
