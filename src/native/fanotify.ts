/**
 * fanotify with pre-content events (FAN_PRE_ACCESS, kernel >= 6.14): the group, inode marks and
 * responses. Values from include/uapi/linux/fanotify.h (Debian's headers predate them); see
 * ../shared/spec/fanotify-hsm.md §1.
 */
import koffi from 'koffi';
import { libc, sysError } from './libc.js';

export const fanotifyInit = libc.func('int fanotify_init(unsigned int flags, unsigned int event_f_flags)') as (flags: number, eventFlags: number) => number;
export const fanotifyMark = libc.func('int fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dirfd, const char *path)') as (
  fd: number, flags: number, mask: bigint, dirfd: number, path: string,
) => number;
const writeRaw = libc.func('long write(int fd, const void *buf, unsigned long count)') as (fd: number, buf: Buffer, count: number) => number;

export const FAN_CLOEXEC = 0x1;
export const FAN_CLASS_PRE_CONTENT = 0x8;
export const FAN_UNLIMITED_QUEUE = 0x10;
export const FAN_MARK_ADD = 0x1;
export const FAN_MARK_REMOVE = 0x2;
export const FAN_MARK_IGNORED_SURV_MODIFY = 0x40;
export const FAN_MARK_IGNORE = 0x400;
/** The only working form of an ignore mark while anyone holds the file open for write (spec §1). */
export const FAN_MARK_IGNORE_SURV = FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY;
export const FAN_PRE_ACCESS = 0x00100000n;
export const FAN_ALLOW = 0x1;
export const FAN_DENY = 0x2;
export const FAN_EVENT_INFO_TYPE_RANGE = 6;
export const AT_FDCWD = -100;
export const EIO = 5;

/** FAN_DENY with the errno the reader gets (pre-content groups only; EIO among the few allowed). */
export function fanDenyErrno(errnoValue: number): number {
  return FAN_DENY | ((errnoValue & 0xff) << 24);
}

/** A pre-content group (needs CAP_SYS_ADMIN); event fds are opened O_RDONLY (never used to write). */
export function createPreContentGroup(): number {
  const fd = fanotifyInit(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE, 0 /* O_RDONLY */ | 0o100000 /* O_LARGEFILE */);
  if (fd < 0) throw sysError('fanotify_init', 'FAN_CLASS_PRE_CONTENT', koffi.errno());
  return fd;
}

/** FAN_PRE_ACCESS on the inode at `path`: every file opened on it afterwards raises events. */
export function markPreAccess(group: number, path: string): void {
  if (fanotifyMark(group, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, path) !== 0) throw sysError('fanotify_mark', path, koffi.errno());
}

/** Reads of the inode at `path` raise no more events (a complete blob). */
export function ignorePreAccess(group: number, path: string): void {
  if (fanotifyMark(group, FAN_MARK_ADD | FAN_MARK_IGNORE_SURV, FAN_PRE_ACCESS, AT_FDCWD, path) !== 0) throw sysError('fanotify_mark', path, koffi.errno());
}

/** Removes the mark of `path` and its ignore mask; a mark already gone is fine. */
export function unmarkPreAccess(group: number, path: string): void {
  fanotifyMark(group, FAN_MARK_REMOVE | FAN_MARK_IGNORE, FAN_PRE_ACCESS, AT_FDCWD, path);
  if (fanotifyMark(group, FAN_MARK_REMOVE, FAN_PRE_ACCESS, AT_FDCWD, path) !== 0) {
    const e = koffi.errno();
    if (e !== 2 /* ENOENT */) throw sysError('fanotify_mark', path, e);
  }
}

/** Answers the event whose fd number is `eventFd`; false when no such event is pending (ENOENT). */
export function respond(group: number, eventFd: number, response: number): boolean {
  const buf = Buffer.alloc(8);
  buf.writeInt32LE(eventFd, 0);
  buf.writeUInt32LE(response, 4);
  if (writeRaw(group, buf, 8) === 8) return true;
  const e = koffi.errno();
  if (e === 2 /* ENOENT */) return false;
  throw sysError('write', `fanotify response for event fd ${eventFd}`, e);
}
