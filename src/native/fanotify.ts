/** fanotify_init/fanotify_mark, enough to probe for pre-content events (FAN_PRE_ACCESS, kernel >= 6.14). */
import { libc } from './libc.js';

export const fanotifyInit = libc.func('int fanotify_init(unsigned int flags, unsigned int event_f_flags)') as (flags: number, eventFlags: number) => number;
export const fanotifyMark = libc.func('int fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dirfd, const char *path)') as (
  fd: number, flags: number, mask: bigint, dirfd: number, path: string,
) => number;

export const FAN_CLOEXEC = 0x1;
export const FAN_CLASS_PRE_CONTENT = 0x8;
export const FAN_MARK_ADD = 0x1;
export const FAN_PRE_ACCESS = 0x00100000n;
export const AT_FDCWD = -100;
