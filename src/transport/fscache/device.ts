/**
 * Opening and commanding /dev/cachefiles. One command per write(); the kernel answers with errno.
 * Only one opener per host (EBUSY otherwise), so errors here say who to blame.
 */
import { openSync, writeSync } from 'node:fs';
import { CacheError, UnsupportedError, systemCode } from '../../util/errors.js';

export const CACHEFILES_DEVICE = '/dev/cachefiles';

/** Writes one command; throws the Node system error (with `.code`) on failure. */
export function deviceCommand(fd: number, command: string): void {
  writeSync(fd, command);
}

/** Opens the device read-write, with errors that say what to do. */
export function openDevice(path = CACHEFILES_DEVICE): number {
  try {
    return openSync(path, 'r+');
  } catch (err) {
    const code = systemCode(err);
    if (code === 'EBUSY') {
      throw new CacheError(`${path} is already open: one cachefiles daemon per host (another ondemand daemon or cachefilesd holds it)`, { path }, { cause: err, errno: 16 });
    }
    if (code === 'ENOENT' || code === 'ENXIO' || code === 'ENODEV') {
      throw new UnsupportedError(`${path} does not exist: the kernel has no CONFIG_CACHEFILES (or the module is not loaded)`, { path });
    }
    if (code === 'EPERM' || code === 'EACCES') {
      throw new UnsupportedError(`${path}: permission denied (needs root / CAP_SYS_ADMIN)`, { path });
    }
    throw new CacheError(`cannot open ${path}: ${String(code)}`, { path }, { cause: err });
  }
}

/**
 * dir/tag/bind ondemand on a freshly opened device. Returns whether `restore` is supported
 * (failover: mainline 6.8, Debian 6.1.95+). On failure the fd stays open: whoever opened it closes it.
 */
export function bindOndemand(fd: number, cacheDir: string, tag: string): { restoreSupported: boolean } {
  try {
    deviceCommand(fd, `dir ${cacheDir}`);
    deviceCommand(fd, `tag ${tag}`);
  } catch (err) {
    throw new CacheError(`cachefiles rejected cache dir ${cacheDir}: ${String(systemCode(err))}`, { path: cacheDir }, { cause: err });
  }
  try {
    deviceCommand(fd, 'bind ondemand');
  } catch (err) {
    const code = systemCode(err);
    if (code === 'EINVAL') {
      throw new UnsupportedError('the kernel refuses "bind ondemand": no CONFIG_CACHEFILES_ONDEMAND', { path: cacheDir });
    }
    if (code === 'EOPNOTSUPP') {
      throw new CacheError(`cache dir ${cacheDir} is on a filesystem cachefiles cannot use (needs tmpfile, xattrs, O_DIRECT: ext4/xfs/btrfs, not tmpfs)`, { path: cacheDir }, { cause: err, errno: 95 });
    }
    throw new CacheError(`cachefiles "bind ondemand" failed on ${cacheDir}: ${String(code)}`, { path: cacheDir }, { cause: err });
  }
  return { restoreSupported: tryRestore(fd) };
}

/** Writes `restore`: true when the kernel has failover (it re-queues requests already read). */
export function tryRestore(fd: number): boolean {
  try {
    deviceCommand(fd, 'restore');
    return true;
  } catch (err) {
    if (systemCode(err) === 'EOPNOTSUPP') return false;
    throw new CacheError(`cachefiles "restore" failed: ${String(systemCode(err))}`, {}, { cause: err });
  }
}
