/**
 * File-system calls Node lacks: mknod, lseek with SEEK_DATA/SEEK_HOLE, fallocate's hole punching, and utimensat with
 * nanoseconds on symlinks. Failures throw Node-style system errors (see sysError).
 */
import { koffi, libc, sysError } from './libc.js';
import { cPath, pathError, type RawPath } from './xattr.js';

const mknodRaw = libc.func('int mknod(const uint8_t *path, uint32_t mode, uint64_t dev)') as (path: Buffer, mode: number, dev: bigint) => number;
const lseekRaw = libc.func('int64_t lseek(int fd, int64_t offset, int whence)') as (fd: number, offset: number, whence: number) => number | bigint;
const fallocateRaw = libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)') as (fd: number, mode: number, offset: number, len: number) => number;
const utimensatRaw = libc.func('int utimensat(int dirfd, const uint8_t *path, const uint8_t *times, int flags)') as (
  dirfd: number, path: Buffer, times: Buffer, flags: number,
) => number;

export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFSOCK = 0o140000;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;
const AT_FDCWD = -100;
const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;
const AT_SYMLINK_NOFOLLOW = 0x100;

/** glibc's makedev: 12+20-bit major, 8+24-bit minor split as the kernel encodes new dev_t. */
export function makeDev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

/** Splits a Node `rdev` (a number or bigint dev_t) into major/minor. */
export function splitDev(rdev: number | bigint): { major: number; minor: number } {
  const d = BigInt(rdev);
  const major = Number(((d >> 32n) & 0xfffff000n) | ((d >> 8n) & 0xfffn));
  const minor = Number(((d >> 12n) & 0xffffff00n) | (d & 0xffn));
  return { major, minor };
}

/** Creates a device node, fifo or socket. `mode` includes the S_IF* type bits. */
export function mknod(path: RawPath, mode: number, major = 0, minor = 0): void {
  if (mknodRaw(cPath(path), mode, makeDev(major, minor)) !== 0) throw pathError('mknod', path, koffi.errno());
}

/**
 * Next data offset at or after `offset` (SEEK_DATA), or null when only a hole remains.
 * Throws for file systems without support (the caller then treats everything as data).
 */
export function seekData(fd: number, offset: number): number | null {
  const r = Number(lseekRaw(fd, offset, SEEK_DATA));
  if (r < 0) {
    const e = koffi.errno();
    if (e === ENXIO) return null;
    throw sysError('lseek', `fd ${fd}`, e);
  }
  return r;
}

/** Start of the next hole at or after `offset` (the file end counts as a hole). */
export function seekHole(fd: number, offset: number): number {
  const r = Number(lseekRaw(fd, offset, SEEK_HOLE));
  if (r < 0) throw sysError('lseek', `fd ${fd}`, koffi.errno());
  return r;
}

/** Frees the blocks of [offset, offset+length) (reads return zeros), keeping the file size. */
export function punchHole(fd: number, offset: number, length: number): void {
  if (fallocateRaw(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) !== 0) throw sysError('fallocate', `fd ${fd}`, koffi.errno());
}

/** Sets atime = mtime = (sec, nsec) on `path` itself, also when it is a symlink. */
export function setTimesNoFollow(path: RawPath, sec: bigint, nsec: number): void {
  const times = Buffer.alloc(32);
  times.writeBigInt64LE(sec, 0);
  times.writeBigInt64LE(BigInt(nsec), 8);
  times.writeBigInt64LE(sec, 16);
  times.writeBigInt64LE(BigInt(nsec), 24);
  if (utimensatRaw(AT_FDCWD, cPath(path), times, AT_SYMLINK_NOFOLLOW) !== 0) throw pathError('utimensat', path, koffi.errno());
}
