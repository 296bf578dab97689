/**
 * Extended attributes through libc (Node has no xattr API). The `l*` variants never follow symlinks.
 * Errors become Node-style system errors (with `code`) so callers handle them like fs errors.
 */
import { koffi, libc, sysError } from './libc.js';

const llistxattrRaw = libc.func('long llistxattr(const uint8_t *path, _Out_ uint8_t *list, size_t size)') as (
  path: Buffer, list: Buffer | null, size: number,
) => number;
const lgetxattrRaw = libc.func('long lgetxattr(const uint8_t *path, const char *name, _Out_ uint8_t *value, size_t size)') as (
  path: Buffer, name: string, value: Buffer | null, size: number,
) => number;
const lsetxattrRaw = libc.func('int lsetxattr(const uint8_t *path, const char *name, const uint8_t *value, size_t size, int flags)') as (
  path: Buffer, name: string, value: Buffer, size: number, flags: number,
) => number;

const ERANGE = 34;

/** Paths may be non-UTF-8: callers pass raw bytes; libc gets them NUL-terminated. */
export type RawPath = string | Buffer;

export function cPath(path: RawPath): Buffer {
  return Buffer.concat([typeof path === 'string' ? Buffer.from(path) : path, Buffer.alloc(1)]);
}

function shown(path: RawPath): string {
  return typeof path === 'string' ? path : path.toString('latin1');
}

/** A Node-like system error for errno `errnoValue`, naming the call and the path. */
export function pathError(call: string, path: RawPath, errnoValue: number): NodeJS.ErrnoException {
  return sysError(call, shown(path), errnoValue);
}

/** Names of all xattrs of `path` (the symlink itself when it is one). Retries when the list grows meanwhile. */
export function listXattrs(path: RawPath): string[] {
  const p = cPath(path);
  for (;;) {
    const size = llistxattrRaw(p, null, 0);
    if (size < 0) throw pathError('llistxattr', path, koffi.errno());
    if (size === 0) return [];
    const buf = Buffer.alloc(size);
    const got = llistxattrRaw(p, buf, size);
    if (got < 0) {
      const e = koffi.errno();
      if (e === ERANGE) continue;
      throw pathError('llistxattr', path, e);
    }
    return buf.subarray(0, got).toString('latin1').split('\0').filter((n) => n.length > 0);
  }
}

/** Value of xattr `name` of `path`. */
export function getXattr(path: RawPath, name: string): Buffer {
  const p = cPath(path);
  for (;;) {
    const size = lgetxattrRaw(p, name, null, 0);
    if (size < 0) throw pathError('lgetxattr', path, koffi.errno());
    const buf = Buffer.alloc(Math.max(size, 1));
    const got = lgetxattrRaw(p, name, buf, size);
    if (got < 0) {
      const e = koffi.errno();
      if (e === ERANGE) continue;
      throw pathError('lgetxattr', path, e);
    }
    return buf.subarray(0, got);
  }
}

/** All xattrs of `path` as (name, value) pairs, sorted by name. */
export function readXattrs(path: RawPath): { name: string; value: Buffer }[] {
  return listXattrs(path).sort().map((name) => ({ name, value: getXattr(path, name) }));
}

export function setXattr(path: RawPath, name: string, value: Buffer): void {
  if (lsetxattrRaw(cPath(path), name, value, value.length, 0) !== 0) throw pathError('lsetxattr', path, koffi.errno());
}
