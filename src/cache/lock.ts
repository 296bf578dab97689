/**
 * One process owns a cache directory: it holds an flock on <dir>/lock (released by the kernel when
 * the process dies, so a crash never leaves a stale lock) and writes its pid there for messages.
 * Two daemons therefore never write the same presence maps.
 */
import { closeSync, constants, ftruncateSync, openSync, writeSync } from 'node:fs';
import { LOCK_EX, tryFlock, unflock } from '../native/flock.js';
import { CacheError, errorText } from '../util/errors.js';
import { readWhole } from './file-io.js';
import { prepareCacheDir } from './dir.js';
import { openCacheFile } from './safe-files.js';

export interface CacheLock {
  release(): void;
}

/**
 * The lock of a cache directory whose flock another process holds for this one (the daemon's
 * supervisor, which outlives its worker: a `cache gc` never runs in the gap while a worker restarts).
 * `fd` is this process's duplicate of that holder's fd; release only closes it (the flock belongs
 * to the open file both share, so an unlock would free it for everyone).
 */
export function adoptCacheLock(fd: number): CacheLock {
  let released = false;
  return {
    release: () => {
      if (released) return;
      released = true;
      closeSync(fd);
    },
  };
}

export function acquireCacheLock(lockPath: string, dir: string): CacheLock & { fd: number } {
  // Never through a planted symlink: the pid written below would overwrite its target.
  const fd = openCacheFile(lockPath, 'lock', { create: true });
  let taken: boolean;
  try {
    taken = tryFlock(fd, LOCK_EX);
  } catch (err) {
    closeSync(fd);
    throw new CacheError(`cannot lock cache directory ${dir}: ${errorText(err)}`, { path: dir }, { cause: err });
  }
  if (!taken) {
    closeSync(fd);
    const holder = readHolder(lockPath);
    throw new CacheError(
      `cache directory ${dir} is in use by another ondemand process${holder ? ` (pid ${holder})` : ''}; ` +
        'one process owns a cache directory at a time',
      { path: dir },
    );
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`, 0);
  let released = false;
  return {
    fd,
    release: () => {
      if (released) return;
      released = true;
      unflock(fd);
      closeSync(fd);
    },
  };
}

/** Prepares `dir` as a cache directory and takes its lock (for a process that hands it to another). */
export function lockCacheDir(dir: string): CacheLock & { fd: number } {
  const layout = prepareCacheDir(dir);
  return acquireCacheLock(layout.lock, layout.dir);
}

/** The pid written by the lock holder, if readable. */
export function readHolder(lockPath: string): number | undefined {
  try {
    const fd = openSync(lockPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const text = (() => {
      try {
        return readWhole(fd).subarray(0, 32).toString('utf8');
      } finally {
        closeSync(fd);
      }
    })();
    const pid = Number.parseInt(text.trim(), 10);
    return Number.isFinite(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
