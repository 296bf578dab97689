/**
 * One process owns a cache directory: it holds an flock on <dir>/lock (released by the kernel when
 * the process dies, so a crash never leaves a stale lock) and writes its pid there for messages.
 * Two daemons therefore never write the same presence maps.
 */
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { LOCK_EX, tryFlock, unflock } from '../native/flock.js';
import { CacheError, errorText } from '../util/errors.js';

export interface CacheLock {
  release(): void;
}

export function acquireCacheLock(lockPath: string, dir: string): CacheLock {
  let fd: number;
  try {
    fd = openSync(lockPath, 'a+', 0o644);
  } catch (err) {
    throw new CacheError(`cannot open cache lock ${lockPath}: ${errorText(err)}`, { path: dir }, { cause: err });
  }
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
    release: () => {
      if (released) return;
      released = true;
      unflock(fd);
      closeSync(fd);
    },
  };
}

/** The pid written by the lock holder, if readable. */
export function readHolder(lockPath: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(lockPath, 'utf8').trim(), 10);
    return Number.isFinite(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
