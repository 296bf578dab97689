/**
 * posix_fadvise(2) through koffi: dropping a file's clean pages from the page cache (DONTNEED), per
 * file, which `ondemand bench` uses instead of `drop_caches` (on VMs that hand freed memory back to the
 * host, dropping everything at once makes the next reads fault every page in again at random).
 */
import { closeSync, fdatasyncSync, openSync } from 'node:fs';
import { libc, sysError } from './libc.js';

const posixFadvise = libc.func('int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)') as (fd: number, offset: number, len: number, advice: number) => number;

export const POSIX_FADV_DONTNEED = 4;

/**
 * Drops the cached pages of the file at `path`: written back first (fdatasync), since DONTNEED leaves
 * dirty pages where they are, and a file written moments ago (a cache file just filled, a copy just
 * made) would otherwise still be read from memory.
 */
export function evictFile(path: string): void {
  dropPages(path, true);
}

/** Drops the cached pages of a file that is never written (a file on a read-only mount: no fdatasync). */
export function evictReadOnlyFile(path: string): void {
  dropPages(path, false);
}

function dropPages(path: string, writeBackFirst: boolean): void {
  const fd = openSync(path, 'r');
  try {
    if (writeBackFirst) fdatasyncSync(fd);
    const e = posixFadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    if (e !== 0) throw sysError('posix_fadvise', path, e);
  } finally {
    closeSync(fd);
  }
}
