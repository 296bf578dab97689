/**
 * What the workloads walk: the image's tree listed once (from the local baseline's mount: the same
 * paths on every mount), written as list files the reading processes take; and the page cache of
 * every file under a directory dropped, file by file.
 */
import { lstatSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { evictFile } from '../native/fadvise.js';

/** How many of the largest files the seq and rand workloads read (default), and at most how many bytes of them. */
export const LARGEST_FILES = 16;
export const LARGEST_BYTES = 1024 ** 3;

export interface TreeLists {
  /** Every entry but the root, relative (stat). */
  entries: string;
  /** Every directory, relative, the root as `.` (readdir). */
  dirs: string;
  /** Every regular file, relative (tree). */
  files: string;
  counts: { entries: number; directories: number; files: number; fileBytes: number };
  /** The largest regular files (relative), largest first, and their bytes. */
  largest: string[];
  largestBytes: number;
}

/** Lists the tree at `root` into list files in `dir`. */
export function listTree(root: string, dir: string, largestFiles = LARGEST_FILES): TreeLists {
  const entries: string[] = [];
  const dirs: string[] = ['.'];
  const files: { path: string; size: number }[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const path = rel === '.' ? e.name : `${rel}/${e.name}`;
      entries.push(path);
      if (e.isDirectory()) {
        dirs.push(path);
        walk(path);
      } else if (e.isFile()) {
        files.push({ path, size: lstatSync(join(root, path)).size });
      }
    }
  };
  walk('.');
  const write = (name: string, lines: string[]): string => {
    const p = join(dir, name);
    writeFileSync(p, lines.length > 0 ? `${lines.join('\n')}\n` : '');
    return p;
  };
  const bySize = [...files].sort((a, b) => b.size - a.size || (a.path < b.path ? -1 : 1));
  const largest: string[] = [];
  let largestBytes = 0;
  for (const f of bySize) {
    if (largest.length >= largestFiles || (largest.length > 0 && largestBytes + f.size > LARGEST_BYTES) || f.size < 4096) break;
    largest.push(f.path);
    largestBytes += f.size;
  }
  return {
    entries: write('entries.list', entries),
    dirs: write('dirs.list', dirs),
    files: write('files.list', files.map((f) => f.path)),
    counts: { entries: entries.length, directories: dirs.length, files: files.length, fileBytes: files.reduce((n, f) => n + f.size, 0) },
    largest,
    largestBytes,
  };
}

/** Regular files under `dir` (not following symlinks, not crossing into what cannot be read). */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  let list;
  try {
    list = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of list) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Drops the page cache of every regular file under `dirs` and of `files` (posix_fadvise DONTNEED). */
export function evictUnder(dirs: string[], files: string[] = []): number {
  const all = [...dirs.flatMap((d) => filesUnder(d)), ...files];
  for (const f of all) {
    try {
      evictFile(f);
    } catch { /* a file removed meanwhile (a temporary of the cache) */ }
  }
  return all.length;
}
