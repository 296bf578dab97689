/**
 * Files the cache keeps whole (bootstraps, manifests, TOCs, tag records), on top of safe-files.ts:
 * written to tmp/ with O_CREAT|O_EXCL|O_NOFOLLOW (0600), fsync'ed and renamed into place (rename
 * replaces a symlink at the destination, never follows it); read never through a symlink.
 */
import { closeSync, constants, fstatSync, lstatSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { CacheError, OndemandError } from '../util/errors.js';
import { cacheIoError, readWhole } from './file-io.js';
import { FILE_MODE, openCacheFile } from './safe-files.js';

/**
 * The file's bytes, or undefined when there is none. A symlink or other non-file there, or a file
 * larger than `maxBytes`, is `'refused'` (never read): the caller may remove it.
 */
export function readWholeFile(path: string, what: string, maxBytes: number): Buffer | undefined | 'refused' {
  let fd: number | undefined;
  try {
    fd = openCacheFile(path, what, { write: false });
  } catch (err) {
    if (err instanceof CacheError && isNonFile(path)) return 'refused';
    throw err;
  }
  if (fd === undefined) return undefined;
  try {
    return fstatSync(fd).size > maxBytes ? 'refused' : readWhole(fd);
  } finally {
    closeSync(fd);
  }
}

function isNonFile(path: string): boolean {
  try {
    return !lstatSync(path).isFile();
  } catch {
    return false;
  }
}

/** Writes `bytes` to `path` whole (temp file in `tmpDir`, fsync, rename, fsync of the folder). */
export async function writeWholeFile(tmpDir: string, path: string, bytes: Buffer): Promise<void> {
  const tmp = join(tmpDir, `${basename(path)}-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, FILE_MODE);
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    const dir = await open(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    await dir.sync().finally(() => dir.close());
  } catch (err) {
    await rm(tmp, { force: true });
    if (err instanceof OndemandError) throw err;
    throw cacheIoError(err, `store ${path}`, { path });
  }
}
