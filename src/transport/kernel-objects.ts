/**
 * Making and unmaking the kernel objects a mount consists of (FUSE mounts, loop devices, mounts,
 * directories, the cachefiles device). The only code that does: the daemon's supervisor calls it for
 * its worker, the in-process broker for tests, benchmarks and the compat guest, and the CLI to clean
 * up after a daemon that is gone.
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { MNT_DETACH, MS_NODEV, MS_NOSUID, MS_RDONLY } from '../native/libc.js';
import { loopChangeFd } from '../native/loop.js';
import { closeQuietly } from '../native/fd.js';
import { receiveFd, unixSocketPair } from '../native/unix-socket.js';
import { hasCapSysAdmin } from '../util/user-dirs.js';
import { mountAsync, umountAsync } from '../native/mount-async.js';
import { MountError, errorText, systemCode } from '../util/errors.js';
import { log } from '../util/log.js';
import { deviceMountedAt, namespacesMounting } from '../util/mountinfo.js';
import { bindOndemand, openDevice } from './fscache/device.js';
import type { FanotifyGroup } from './fanotify/group.js';
import type { KernelObject } from './kernel-broker.js';
import { makeDirs } from '../util/make-dirs.js';

const run = promisify(execFile);

/** The errno of a failed system call, if it has one (callers tell ENOENT from EBUSY by it). */
function errnoOf(err: unknown): number | undefined {
  const e = (err as NodeJS.ErrnoException | null)?.errno;
  return typeof e === 'number' ? Math.abs(e) : undefined;
}

/** A read-only loop device over `file`, attached by losetup; returns /dev/loopN. */
export async function attachLoop(file: string): Promise<string> {
  try {
    const { stdout } = await run('losetup', ['--find', '--show', '--read-only', file]);
    return stdout.trim();
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new MountError(`cannot attach a loop device to ${file}: ${stderr ?? String(err)}`, { path: file }, { cause: err });
  }
}

/** mount(2) flags of the erofs a user sees: read-only, and nodev unless device nodes are allowed. */
export function erofsMountFlags(allowDevices: boolean): number {
  return MS_RDONLY | (allowDevices ? 0 : MS_NODEV);
}

/**
 * Opens /dev/fuse and mounts that connection at `path`; returns the fd (its owner serves it). Without
 * CAP_SYS_ADMIN (an unprivileged user's daemon) fusermount3 mounts it and hands the fd back.
 */
export async function mountFuseConnection(path: string, fsname: string, options: string, flags = MS_RDONLY | MS_NOSUID | MS_NODEV): Promise<number> {
  if (!hasCapSysAdmin()) return mountWithFusermount(path, fsname, options, flags);
  const fd = openSync('/dev/fuse', constants.O_RDWR);
  try {
    const data = `fd=${fd},rootmode=40000,user_id=0,group_id=0${options ? ',' + options : ''}`;
    await mountAsync(fsname, path, `fuse.${fsname}`, flags, data);
    return fd;
  } catch (err) {
    closeSync(fd);
    throw new MountError(`cannot mount FUSE at ${path}: ${systemCode(err) ?? errorText(err)}`, { path }, { cause: err, errno: errnoOf(err) });
  }
}

/** fusermount3 (set-user-id root) mounts FUSE for an unprivileged user and passes the /dev/fuse fd back over a socket. */
async function mountWithFusermount(path: string, fsname: string, options: string, flags: number): Promise<number> {
  const pair = unixSocketPair();
  if (typeof pair === 'number') throw new MountError(`cannot mount FUSE at ${path}: socketpair failed (errno ${-pair})`, { path }, { errno: -pair });
  const [ours, theirs] = pair;
  const opts = [(flags & MS_RDONLY) !== 0 ? 'ro' : '', 'nosuid', 'nodev', `fsname=${fsname}`, `subtype=${fsname}`, options].filter(Boolean).join(',');
  try {
    const stderr = await new Promise<string>((resolve, reject) => {
      const child = spawn('fusermount3', ['-o', opts, '--', path], { env: { ...process.env, _FUSE_COMMFD: '3' }, stdio: ['ignore', 'ignore', 'pipe', theirs] });
      let err = '';
      child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve(err) : reject(new Error(err.trim() || `fusermount3 exited ${code}`))));
    });
    const fd = receiveFd(ours);
    if (fd < 0) throw new Error(`fusermount3 mounted but passed no fd (errno ${-fd})${stderr ? `: ${stderr.trim()}` : ''}`);
    return fd;
  } catch (err) {
    throw new MountError(`cannot mount FUSE at ${path} with fusermount3: ${errorText(err)}`, { path }, { cause: err });
  } finally {
    closeQuietly(ours);
    closeQuietly(theirs);
  }
}

/** Switches a read-only loop device to `file` (same size): reads no longer go through what it had. */
export function swapLoop(device: string, file: string): void {
  const loopFd = openSync(device, constants.O_RDONLY);
  try {
    const fileFd = openSync(file, constants.O_RDONLY);
    try {
      loopChangeFd(loopFd, fileFd, device);
    } finally {
      closeSync(fileFd);
    }
  } finally {
    closeSync(loopFd);
  }
}

/**
 * mount(2) on the thread pool, with the mount named in the error. Returns the new filesystem's
 * `major:minor` (recorded: after the unmount it finds copies of the mount in other namespaces).
 */
export async function mountFilesystem(source: string, target: string, fstype: string, flags: number, data: string): Promise<string | undefined> {
  try {
    await mountAsync(source, target, fstype, flags, data);
  } catch (err) {
    throw new MountError(`cannot mount ${fstype} at ${target}: ${systemCode(err) ?? errorText(err)}`, { mountpoint: target }, { cause: err, errno: errnoOf(err) });
  }
  return deviceMountedAt(target);
}

/** Makes `path` (and parents); true when it did not exist before (so it is ours to remove). */
export async function makeDir(path: string): Promise<boolean> {
  return makeDirs(path) !== undefined;
}

/**
 * Opens /dev/cachefiles and binds it in on-demand mode over `<cacheDir>/fscache` (cachefiles needs a
 * dir on ext4/xfs). One per host: the fd must be held for as long as fscache mounts are served.
 */
export function bindCachefiles(cacheDir: string): { fd: number; restoreSupported: boolean } {
  const dir = `${cacheDir}/fscache`;
  makeDirs(dir, 0o700);
  const fd = openDevice();
  try {
    return { fd, ...bindOndemand(fd, dir, 'ondemand') };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

async function detachLoop(device: string): Promise<void> {
  try {
    await run('losetup', ['--detach', device]);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    // Already gone (autoclear after the last user closed it) is fine.
    if (/No such device|No such device or address|not a block device|No such file/i.test(stderr)) return;
    throw new MountError(`cannot detach ${device}: ${stderr.trim()}`, { path: device }, { cause: err });
  }
}

/** What undoing an object did: `detached-busy` = a mount still in use was detached lazily (it lives on). */
export type UnmakeOutcome = 'done' | 'detached-busy';

async function lazyUmount(target: string): Promise<UnmakeOutcome> {
  if (!hasCapSysAdmin()) return fusermountUnmount(target);
  try {
    await umountAsync(target, MNT_DETACH);
    return 'done';
  } catch (err) {
    const code = systemCode(err);
    if (code === 'EINVAL' || code === 'ENOENT') return 'done'; // not (or no longer) a mount point
    throw err;
  }
}

/** An unprivileged user's FUSE mount goes away through fusermount3 (lazily: a busy one is detached). */
async function fusermountUnmount(target: string): Promise<UnmakeOutcome> {
  try {
    await run('fusermount3', ['-u', '-z', '--', target]);
    return 'done';
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    if (/not found in \/etc\/mtab|not mounted|Invalid argument|No such file/i.test(stderr)) return 'done';
    throw new MountError(`cannot unmount ${target} with fusermount3: ${stderr.trim() || errorText(err)}`, { mountpoint: target }, { cause: err });
  }
}

/**
 * Unmounts `target`; a busy one is detached lazily instead (and said so). A mount whose filesystem
 * (`device`, as recorded when it was made) another mount namespace still mounts lives on there too
 * (a namespace made with private propagation while it existed, e.g. a container's): that also counts
 * as busy, so what serves its reads is kept (they fail from now on, never read holes as zeros).
 */
async function umountOrDetach(target: string, fstype: string, device: string | undefined): Promise<UnmakeOutcome> {
  let busy = false;
  try {
    await umountAsync(target, 0);
  } catch (err) {
    busy = systemCode(err) === 'EBUSY';
    await lazyUmount(target);
  }
  if (busy) return 'detached-busy';
  const elsewhere = device === undefined ? [] : namespacesMounting(device, fstype);
  if (elsewhere.length === 0) return 'done';
  log.warn({ mountpoint: target, fstype, device, pids: elsewhere },
    'unmounted, but other mount namespaces still mount the same filesystem (copies made while it was mounted): kept as a busy mount, their reads fail from now on');
  return 'detached-busy';
}

/**
 * Undoes one object. Mounts are detached lazily so a busy mount never blocks the cleanup. A fanotify
 * mark lives in its owner's group: the owner removes it (here, without the group, nothing to do).
 */
export async function unmakeObject(object: KernelObject): Promise<UnmakeOutcome> {
  switch (object.kind) {
    case 'mount':
      return umountOrDetach(object.target, object.fstype, object.device);
    case 'fuse':
      return lazyUmount(object.path);
    case 'fanotify-mark':
      return 'done';
    case 'loop':
      await detachLoop(object.device);
      return 'done';
    case 'dir':
      try {
        await rmdir(object.path);
      } catch (err) {
        if (systemCode(err) !== 'ENOENT') throw err;
      }
      return 'done';
  }
}

/** Same object (kind and identity), whatever else the records say about it. */
export function sameObject(a: KernelObject, b: KernelObject): boolean {
  switch (a.kind) {
    case 'fuse': return b.kind === 'fuse' && a.path === b.path;
    case 'loop': return b.kind === 'loop' && a.device === b.device;
    case 'mount': return b.kind === 'mount' && a.target === b.target;
    case 'dir': return b.kind === 'dir' && a.path === b.path;
    case 'fanotify-mark': return b.kind === 'fanotify-mark' && a.path === b.path;
  }
}

/**
 * Undoes an object its owner holds: a FUSE connection also ends (its last fd is closed), a fanotify
 * mark leaves `group` unless a busy mount of the same owner was detached (`retainMarks`).
 */
export async function releaseObject(object: KernelObject, group?: FanotifyGroup, retainMarks = false): Promise<UnmakeOutcome> {
  if (object.kind === 'fanotify-mark') {
    group?.release(object, retainMarks);
    return 'done';
  }
  const outcome = await unmakeObject(object);
  if (object.kind === 'fuse') closeSync(object.fd);
  return outcome;
}

export function describeObject(object: KernelObject): string {
  switch (object.kind) {
    case 'mount': return `${object.fstype} mount at ${object.target}`;
    case 'fuse': return `FUSE mount at ${object.path}`;
    case 'loop': return `loop device ${object.device}`;
    case 'dir': return `directory ${object.path}`;
    case 'fanotify-mark': return `fanotify mark on ${object.path}`;
  }
}
