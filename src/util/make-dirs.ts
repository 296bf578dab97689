/**
 * `mkdir -p`. Node's own ({ recursive: true }) never returns where mkdir answers ENOENT under a parent
 * that exists (procfs does: `ondemand build DIR oci:/proc/x` hung): it takes the ENOENT for a missing
 * parent, makes the parent (EEXIST) and tries again, forever. Here the missing directories are found
 * first, by stat, and each is made once: whatever mkdir answers then is the error.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { systemCode } from './errors.js';

/** The directories of `path` that do not exist, outermost first (empty when `path` is a directory). */
function missingDirs(path: string): string[] {
  const missing: string[] = [];
  for (let p = resolve(path); ; p = dirname(p)) {
    try {
      const isDir = statSync(p).isDirectory();
      if (missing.length === 0 && !isDir) mkdirSync(p); // EEXIST, as Node's own says
      return missing.reverse();
    } catch (err) {
      if (systemCode(err) !== 'ENOENT') throw err;
    }
    missing.push(p);
    if (dirname(p) === p) return missing.reverse();
  }
}

/** A directory someone else made meanwhile is fine; anything else mkdir says is the error. */
function madeMeanwhile(err: unknown, dir: string): boolean {
  if (systemCode(err) !== 'EEXIST') return false;
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Makes `path` and its missing parents (`mode` for each made); the first directory made, or undefined
 * when it existed. A few syscalls: callers on the event loop use it too.
 */
export function makeDirs(path: string, mode?: number): string | undefined {
  const missing = missingDirs(path);
  for (const dir of missing) {
    try {
      mkdirSync(dir, mode === undefined ? {} : { mode });
    } catch (err) {
      if (!madeMeanwhile(err, dir)) throw err;
    }
  }
  return missing[0];
}
