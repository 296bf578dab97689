/**
 * Opening the cache's own files and folders without trusting what is already there: a pre-placed
 * symlink would make root write its target, a fifo would block, a device would be opened. Files are
 * opened with O_NOFOLLOW and must be regular; folders must be real directories. Modes are 0600 and
 * 0700 (cached blobs hold the content of images' private files), tightened when found looser.
 */
import { chmodSync, closeSync, constants, fchmodSync, fstatSync, lstatSync, openSync, statSync, type Stats } from 'node:fs';
import { CacheError, errorText, systemCode } from '../util/errors.js';
import { makeDirs } from '../util/make-dirs.js';

export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

function hostile(path: string, what: string, found: string): CacheError {
  return new CacheError(`cache ${what} ${path} is ${found}, not a regular file the cache made; refusing to use it (remove it)`, { path });
}

function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symlink';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a fifo';
  if (st.isSocket()) return 'a socket';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'a device node';
  return 'not a regular file';
}

/**
 * Opens (creating 0600 if `create`) a cache file, never through a symlink and only if it is a regular
 * file; tightens its mode to 0600. Returns the fd, or undefined when it is missing and not created.
 */
export function openCacheFile(path: string, what: string, options: { create: true; write?: boolean }): number;
export function openCacheFile(path: string, what: string, options?: { create?: boolean; write?: boolean }): number | undefined;
export function openCacheFile(path: string, what: string, options: { create?: boolean; write?: boolean } = {}): number | undefined {
  const write = options.write ?? true;
  // Checked before opening so a fifo or device is never opened; O_NOFOLLOW closes the race with a
  // symlink put in place meanwhile, and the fstat below the one with any other kind of file.
  try {
    const st = lstatSync(path);
    if (!st.isFile()) throw hostile(path, what, kindOf(st));
  } catch (err) {
    if (err instanceof CacheError) throw err;
    if (systemCode(err) !== 'ENOENT') throw new CacheError(`cannot inspect cache ${what} ${path}: ${errorText(err)}`, { path }, { cause: err });
    if (!options.create) return undefined;
  }
  const flags = (write ? constants.O_RDWR : constants.O_RDONLY) | constants.O_NOFOLLOW | constants.O_NONBLOCK | (options.create ? constants.O_CREAT : 0);
  let fd: number;
  try {
    fd = openSync(path, flags, FILE_MODE);
  } catch (err) {
    const code = systemCode(err);
    if (code === 'ELOOP') throw hostile(path, what, 'a symlink');
    if (code === 'ENOENT' && !options.create) return undefined;
    throw new CacheError(`cannot open cache ${what} ${path}: ${errorText(err)}`, { path }, { cause: err });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw hostile(path, what, kindOf(st));
    if ((st.mode & 0o7777) !== FILE_MODE) fchmodSync(fd, FILE_MODE);
    return fd;
  } catch (err) {
    closeSync(fd);
    if (err instanceof CacheError) throw err;
    throw new CacheError(`cannot secure cache ${what} ${path}: ${errorText(err)}`, { path }, { cause: err });
  }
}

/**
 * Creates a cache folder 0700 or checks an existing one is a real directory (the cache root itself may
 * be a symlink an administrator placed: `followLink`), tightening its mode to 0700.
 */
export function ensureCacheDir(path: string, followLink = false): void {
  try {
    try {
      makeDirs(path, DIR_MODE);
    } catch (err) {
      if (systemCode(err) !== 'EEXIST') throw err; // a file or dangling link there: named below
    }
    const st = followLink ? statSync(path) : lstatSync(path);
    if (!st.isDirectory()) {
      throw new CacheError(`cache directory ${path} is ${kindOf(st)}, not a directory; refusing to use it (remove it)`, { path });
    }
    if ((st.mode & 0o7777) !== DIR_MODE) chmodSync(path, DIR_MODE);
  } catch (err) {
    if (err instanceof CacheError) throw err;
    throw new CacheError(`cannot create cache directory ${path}: ${errorText(err)}`, { path }, { cause: err });
  }
}
