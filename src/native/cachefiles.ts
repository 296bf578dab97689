/**
 * Syscalls the cachefiles (fscache) transport needs beyond src/native/libc.ts: epoll (edge-triggered
 * waiting on /dev/cachefiles), page-aligned native buffers (the anon fd takes O_DIRECT writes),
 * fsopen/fsconfig (the erofs fsid probe), and mount/umount2 callable off the main thread.
 * Raw results only: -1 plus errno, as in libc.ts. Async variants run on the libuv pool; koffi restores
 * errno on the main thread before the callback runs, so `koffi.errno()` is valid there.
 */
import { koffi, libc, type WithAsync } from './libc.js';

export const epollCreate1 = libc.func('int epoll_create1(int flags)') as (flags: number) => number;
/** `event` is a packed struct epoll_event (12 bytes on x86-64: u32 events, u64 data). */
export const epollCtl = libc.func('int epoll_ctl(int epfd, int op, int fd, uint8_t *event)') as (
  epfd: number, op: number, fd: number, event: Buffer | null,
) => number;
/** `events` is native memory (an AlignedBuffer's `ptr`), so the async call never touches a JS object. */
export const epollWait = libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)') as WithAsync<
  [epfd: number, events: unknown, maxevents: number, timeoutMs: number], number
>;

export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLLIN = 0x001;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLET = 0x80000000;
export const EPOLL_EVENT_SIZE = 12;

/** A struct epoll_event for epoll_ctl. */
export function epollEvent(events: number, data: bigint): Buffer {
  const b = Buffer.alloc(EPOLL_EVENT_SIZE);
  b.writeUInt32LE(events >>> 0, 0);
  b.writeBigUInt64LE(data, 4);
  return b;
}

const alignedAlloc = libc.func('void *aligned_alloc(size_t alignment, size_t size)') as (alignment: number, size: number) => unknown;
const free = libc.func('void free(void *ptr)') as (ptr: unknown) => void;

/** Native memory aligned to `alignment`, seen as a Buffer (no copy). Call `release()` exactly once. */
export interface AlignedBuffer {
  readonly buffer: Buffer;
  /** The native pointer (koffi external), for calls declared with `void *`. */
  readonly ptr: unknown;
  release(): void;
}

export function allocAligned(size: number, alignment = 4096): AlignedBuffer {
  const rounded = Math.ceil(size / alignment) * alignment;
  const ptr = alignedAlloc(alignment, rounded);
  if (ptr === null) throw new Error(`aligned_alloc(${alignment}, ${rounded}) failed`);
  const buffer = Buffer.from(koffi.view(ptr, rounded));
  let released = false;
  return {
    buffer,
    ptr,
    release: () => {
      if (released) return;
      released = true;
      free(ptr);
    },
  };
}

/** Address of a Buffer's first byte (to assert alignment). */
export function bufferAddress(buf: Buffer): bigint {
  return koffi.address(buf);
}

// fsopen(2)/fsconfig(2) have no glibc wrapper in bookworm; the raw syscall numbers are the x86-64 ones.
export const SYS_fsopen = 430;
export const SYS_fsconfig = 431;
export const FSCONFIG_SET_STRING = 1;
export const FSOPEN_CLOEXEC = 1;
export const syscallFsopen = libc.func('long syscall(long nr, const char *fsname, unsigned int flags)') as (
  nr: number, fsname: string, flags: number,
) => number;
export const syscallFsconfig = libc.func('long syscall(long nr, int fd, unsigned int cmd, const char *key, const char *value, int aux)') as (
  nr: number, fd: number, cmd: number, key: string, value: string | null, aux: number,
) => number;

export function lastErrno(): number {
  return koffi.errno() as number;
}
