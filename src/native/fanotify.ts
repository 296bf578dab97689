/**
 * fanotify with pre-content events (FAN_PRE_ACCESS, kernel >= 6.14): the group, inode marks and
 * responses. Values from include/uapi/linux/fanotify.h (Debian's headers predate them); see
 * ../shared/spec/fanotify-hsm.md §1.
 */
import koffi from 'koffi';
import { hasCapSysAdmin } from '../util/user-dirs.js';
import { libc, sysError } from './libc.js';

export const fanotifyInit = libc.func('int fanotify_init(unsigned int flags, unsigned int event_f_flags)') as (flags: number, eventFlags: number) => number;
export const fanotifyMark = libc.func('int fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dirfd, const char *path)') as (
  fd: number, flags: number, mask: bigint, dirfd: number, path: string,
) => number;
const writeRaw = libc.func('long write(int fd, const void *buf, unsigned long count)') as (fd: number, buf: Buffer, count: number) => number;

export const FAN_CLOEXEC = 0x1;
export const FAN_CLASS_NOTIF = 0x0;
export const FAN_NONBLOCK = 0x2;
export const FAN_CLASS_PRE_CONTENT = 0x8;
export const FAN_UNLIMITED_QUEUE = 0x10;
export const FAN_MARK_ADD = 0x1;
export const FAN_MARK_REMOVE = 0x2;
export const FAN_MARK_IGNORED_SURV_MODIFY = 0x40;
export const FAN_MARK_IGNORE = 0x400;
/** The only working form of an ignore mark while anyone holds the file open for write (spec §1). */
export const FAN_MARK_IGNORE_SURV = FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY;
export const FAN_PRE_ACCESS = 0x00100000n;
/** A write, truncate or fallocate of the file (notification only: it has happened). */
export const FAN_MODIFY = 0x2n;
export const FAN_ALLOW = 0x1;
export const FAN_DENY = 0x2;
export const FAN_EVENT_INFO_TYPE_FID = 1;
export const FAN_EVENT_INFO_TYPE_RANGE = 6;
/** Events were lost (a full queue): whatever they were about is unknown. */
export const FAN_Q_OVERFLOW = 0x4000;
/** Events name files by handle (no fd opened per event): needed for events without a path (truncate). */
export const FAN_REPORT_FID = 0x200;
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

/**
 * A notification group reporting file handles, for FAN_MODIFY on inode marks: who changed a file,
 * after the fact (writes, and truncates, which have no path an fd could be opened on). Without
 * CAP_SYS_ADMIN the kernel allows it too (5.13+), reporting pid 0 for other processes. Reads never
 * block (poll first).
 */
export function createNotifyGroup(): number {
  const unlimited = hasCapSysAdmin() ? FAN_UNLIMITED_QUEUE : 0;
  const fd = fanotifyInit(FAN_CLASS_NOTIF | FAN_REPORT_FID | FAN_CLOEXEC | FAN_NONBLOCK | unlimited, 0 /* O_RDONLY */ | 0o100000 /* O_LARGEFILE */);
  if (fd < 0) throw sysError('fanotify_init', 'FAN_CLASS_NOTIF|FAN_REPORT_FID', koffi.errno());
  return fd;
}

const nameToHandleAt = libc.func('int name_to_handle_at(int dirfd, const char *pathname, _Inout_ uint8_t *handle, _Out_ int *mount_id, int flags)') as (
  dirfd: number, path: string, handle: Buffer, mountId: [number], flags: number,
) => number;
const AT_EMPTY_PATH = 0x1000;
const MAX_HANDLE_SZ = 128;

/** struct file_handle of the file open as `fd` (what FAN_REPORT_FID events name it by). */
export function fileHandleOf(fd: number): Buffer {
  const handle = Buffer.alloc(8 + MAX_HANDLE_SZ);
  handle.writeUInt32LE(MAX_HANDLE_SZ, 0);
  if (nameToHandleAt(fd, '', handle, [0], AT_EMPTY_PATH) !== 0) throw sysError('name_to_handle_at', `fd ${fd}`, koffi.errno());
  return handle.subarray(0, 8 + handle.readUInt32LE(0));
}

const fanotifyMarkFd = fanotifyMark as unknown as (fd: number, flags: number, mask: bigint, dirfd: number, path: null) => number;

/** FAN_MODIFY on the inode open as `fd`. */
export function markModify(group: number, fd: number): void {
  if (fanotifyMarkFd(group, FAN_MARK_ADD, FAN_MODIFY, fd, null) !== 0) throw sysError('fanotify_mark', `fd ${fd}`, koffi.errno());
}

/** Removes the FAN_MODIFY mark of the inode open as `fd` (one already gone is fine). */
export function unmarkModify(group: number, fd: number): void {
  fanotifyMarkFd(group, FAN_MARK_REMOVE, FAN_MODIFY, fd, null);
}

/** FAN_PRE_ACCESS on the inode at `path`: every file opened on it afterwards raises events. */
export function markPreAccess(group: number, path: string): void {
  if (fanotifyMark(group, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, path) !== 0) throw sysError('fanotify_mark', path, koffi.errno());
}

/** FAN_PRE_ACCESS on the inode open as `fd` (a file replaced under its name keeps its own mark). */
export function markPreAccessFd(group: number, fd: number): void {
  if (fanotifyMarkFd(group, FAN_MARK_ADD, FAN_PRE_ACCESS, fd, null) !== 0) throw sysError('fanotify_mark', `fd ${fd}`, koffi.errno());
}

/** Reads of the inode open as `fd` raise events again (its ignore mask goes; a mark already gone is fine). */
export function unignorePreAccessFd(group: number, fd: number): void {
  fanotifyMarkFd(group, FAN_MARK_REMOVE | FAN_MARK_IGNORE, FAN_PRE_ACCESS, fd, null);
}

/** Removes the mark of the inode open as `fd` and its ignore mask; a mark already gone is fine. */
export function unmarkPreAccessFd(group: number, fd: number): void {
  unignorePreAccessFd(group, fd);
  if (fanotifyMarkFd(group, FAN_MARK_REMOVE, FAN_PRE_ACCESS, fd, null) !== 0) {
    const e = koffi.errno();
    if (e !== 2 /* ENOENT */) throw sysError('fanotify_mark', `fd ${fd}`, e);
  }
}

/** Reads of the inode at `path` raise no more events (a complete blob). */
export function ignorePreAccess(group: number, path: string): void {
  if (fanotifyMark(group, FAN_MARK_ADD | FAN_MARK_IGNORE_SURV, FAN_PRE_ACCESS, AT_FDCWD, path) !== 0) throw sysError('fanotify_mark', path, koffi.errno());
}

/** Reads of the inode at `path` raise events again (a blob no longer trusted as complete). */
export function unignorePreAccess(group: number, path: string): void {
  if (fanotifyMark(group, FAN_MARK_REMOVE | FAN_MARK_IGNORE, FAN_PRE_ACCESS, AT_FDCWD, path) !== 0) {
    const e = koffi.errno();
    if (e !== 2 /* ENOENT */) throw sysError('fanotify_mark', path, e);
  }
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
