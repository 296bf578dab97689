/**
 * Checks on the user's mountpoint, before anything is made; the "is it usable yet" wait after; and at
 * unmount, who still uses it.
 */
import { readFileSync, readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { umountAsync } from '../native/mount-async.js';
import { MountError, systemCode } from '../util/errors.js';
import { isMountPoint, readMountInfo } from '../util/mountinfo.js';

/** A directory a mount must neither cover nor sit in (the daemon's run dir, the cache dir). */
export interface ReservedDir { name: string; path: string }

/** The daemon's own directories: a mount inside or above one hides what the daemon needs to serve it. */
export function daemonDirs(runDir: string, cacheDir: string): ReservedDir[] {
  return [{ name: "the daemon's run dir", path: runDir }, { name: 'the cache dir', path: cacheDir }];
}

/** The real path of `path`, or of its nearest existing ancestor joined with the rest (dirs made later). */
function canonical(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    const parent = dirname(path);
    return parent === path ? path : join(canonical(parent), basename(path));
  }
}

const within = (path: string, dir: string): boolean => dir === '/' || path.startsWith(dir + '/');

function checkNotReserved(real: string, reserved: readonly ReservedDir[]): void {
  for (const r of reserved) {
    const dir = canonical(resolve(r.path));
    const where = real === dir ? 'is' : within(real, dir) ? 'is inside' : within(dir, real) ? 'is above' : null;
    if (where !== null) throw new MountError(`mountpoint ${real} ${where} ${r.name} ${dir}`, { mountpoint: real });
  }
}

/**
 * The canonical absolute path of an existing, empty, non-busy directory that is neither inside nor above
 * any `reserved` directory; one clear error otherwise.
 */
export function checkMountpoint(path: string, reserved: readonly ReservedDir[] = []): string {
  // resolve('') is the working directory: never what the user meant.
  if (path === '') throw new MountError('the mountpoint is the empty string: name an empty directory');
  const abs = resolve(path);
  let real: string;
  try {
    real = realpathSync(abs);
    if (!statSync(real).isDirectory()) throw new MountError(`mountpoint ${abs} is not a directory`, { mountpoint: abs });
  } catch (err) {
    if (err instanceof MountError) throw err;
    if (systemCode(err) === 'ENOENT') throw new MountError(`mountpoint ${abs} does not exist`, { mountpoint: abs });
    if (systemCode(err) === 'ENOTDIR') throw new MountError(`mountpoint ${abs} is not a directory`, { mountpoint: abs });
    throw new MountError(`mountpoint ${abs} cannot be used: ${String(systemCode(err) ?? err)}`, { mountpoint: abs }, { cause: err });
  }
  if (isMountPoint(real)) throw new MountError(`mountpoint ${real} is busy: something is already mounted there`, { mountpoint: real });
  checkNotReserved(real, reserved);
  if (readdirSync(real).length > 0) throw new MountError(`mountpoint ${real} is not empty (the mount would hide what it holds)`, { mountpoint: real });
  return real;
}

/** Waits until the mount's root can be listed (the kernel has read the erofs root through the transport). */
export async function waitUsable(mountpoint: string, timeoutMs = 30_000): Promise<void> {
  const { readdir } = await import('node:fs/promises');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (isMountPoint(mountpoint)) {
        await readdir(mountpoint);
        return;
      }
    } catch (err) {
      if (Date.now() > deadline) throw new MountError(`mount at ${mountpoint} is not usable: ${String(systemCode(err) ?? err)}`, { mountpoint });
    }
    if (Date.now() > deadline) throw new MountError(`mount at ${mountpoint} did not appear`, { mountpoint });
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A process using a mount, and how (like `fuser -v`: cwd, root, exe, open file, mapped file). */
export interface MountUser { pid: number; command: string; uses: string[] }

function readlinkOrNull(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

/** Every process whose cwd, root, executable, open files or mapped files are inside `mountpoint` (from /proc). */
export function mountUsers(mountpoint: string): MountUser[] {
  const inside = (p: string | null): boolean => p !== null && (p === mountpoint || p.startsWith(mountpoint + '/'));
  const users: MountUser[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const proc = `/proc/${entry}`;
    const uses = ['cwd', 'root', 'exe'].filter((link) => inside(readlinkOrNull(`${proc}/${link}`)));
    try {
      if (readdirSync(`${proc}/fd`).some((fd) => inside(readlinkOrNull(`${proc}/fd/${fd}`)))) uses.push('open file');
      // maps lines end with the path after 5 fields; " (deleted)" may follow it.
      if (readFileSync(`${proc}/maps`, 'utf8').split('\n').some((l) => inside(l.split(/\s+/)[5] ?? null))) uses.push('mapped file');
    } catch { /* gone meanwhile, or a kernel thread */ }
    if (uses.length === 0) continue;
    let command = '?';
    try {
      command = readFileSync(`${proc}/comm`, 'utf8').trim();
    } catch { /* gone meanwhile */ }
    users.push({ pid: Number(entry), command, uses });
  }
  return users;
}

/** `pid 12 (sleep: cwd), pid 40 (less: open file)`, and mounts inside it; at most `limit` processes. */
export function describeUsers(mountpoint: string, users: readonly MountUser[], limit = 10): string {
  const parts = users.slice(0, limit).map((u) => `pid ${u.pid} (${u.command}: ${u.uses.join(', ')})`);
  if (users.length > limit) parts.push(`${users.length - limit} more`);
  const below = readMountInfo().map((m) => m.mountpoint).filter((m) => m.startsWith(mountpoint + '/'));
  const text = [parts.length > 0 ? `used by ${parts.join(', ')}` : '', below.length > 0 ? `mounts inside it: ${below.join(', ')}` : '']
    .filter(Boolean).join('; ');
  return text || 'in use (no process found holding it)';
}

/**
 * Unmounts what is at `mountpoint` unless something uses it: a plain umount2 is the kernel's own answer
 * to "busy?" (no race with a process that opens a file meanwhile). Busy → MountError EBUSY naming the
 * users, and nothing is undone. Already gone → fine (the caller's lazy cleanup finds nothing there).
 * When umount2 fails otherwise (no permission here), /proc decides.
 */
export async function umountUnlessBusy(mountpoint: string): Promise<void> {
  try {
    await umountAsync(mountpoint, 0);
  } catch (err) {
    const code = systemCode(err);
    if (code === 'EINVAL' || code === 'ENOENT') return;
    const users = mountUsers(mountpoint);
    if (code !== 'EBUSY' && users.length === 0) return;
    throw new MountError(`${mountpoint} is busy: ${describeUsers(mountpoint, users)}; stop them, or umount --lazy`,
      { mountpoint }, { errno: 16, cause: err });
  }
}
