/**
 * The process that keeps the daemon's fanotify group open when the supervisor dies: the kernel allows
 * every pending event when a group's last fd closes, and readers would see holes as zeros. It holds
 * the fd (as its fd 3; what it does meanwhile: fanotify-holder-main.ts); the next supervisor adopts
 * the group from it, and a clean shutdown ends it once no mark is left that a detached, still-busy
 * mount may need.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fdOfProcess } from '../native/process.js';
import { unmarkPreAccess } from '../native/fanotify.js';
import { closeQuietly } from '../native/fd.js';
import { errorText } from '../util/errors.js';
import { log } from '../util/log.js';
import type { MarkedFile } from '../transport/fanotify/group.js';

const HOLDER_FD = 3;
const ENTRY = 'fanotify-holder-main.js';

export const holderPidPath = (runDir: string): string => join(runDir, 'fanotify-holder.pid');
export const fanotifyJournalPath = (runDir: string): string => join(runDir, 'fanotify.journal');
/** Marks kept for mounts a daemon-less `umount` detached while busy (their erofs may still read the files). */
const retainedMarksPath = (runDir: string): string => join(runDir, 'fanotify-retained.json');

/** The marks detached busy mounts keep (see retainMarks). */
export function retainedMarks(runDir: string): MarkedFile[] {
  try {
    const list = JSON.parse(readFileSync(retainedMarksPath(runDir), 'utf8')) as unknown;
    return Array.isArray(list) ? list.filter((m): m is MarkedFile => typeof (m as MarkedFile | null)?.path === 'string') : [];
  } catch {
    return [];
  }
}

/**
 * A daemon-less `umount` detached a busy mount: its marks stay in the holder's group for as long as the
 * group lives (nobody can tell when that erofs goes), and a daemon that adopts the group keeps them too.
 */
export function retainMarks(runDir: string, marks: readonly MarkedFile[]): void {
  writeFileSync(retainedMarksPath(runDir), JSON.stringify([...retainedMarks(runDir), ...marks]), { mode: 0o600 });
}

/**
 * Starts a holder of `groupFd`; returns its pid (also written to the run dir). `onExit` runs if it
 * dies while this process lives (someone killed it: the caller starts another).
 */
export function spawnHolder(runDir: string, groupFd: number, onExit?: () => void): number {
  const entry = fileURLToPath(new URL(`./${ENTRY}`, import.meta.url));
  const child = spawn(process.execPath, [entry, runDir], { stdio: ['ignore', 'ignore', 'ignore', groupFd], detached: true });
  child.unref();
  if (child.pid === undefined) throw new Error('cannot start the fanotify group holder');
  if (onExit) child.once('exit', onExit);
  writeFileSync(holderPidPath(runDir), `${child.pid}\n`, { mode: 0o600 });
  log.info({ holderPid: child.pid }, 'fanotify group holder started');
  return child.pid;
}

/** The pid of the live holder of `runDir`, or why there is none. */
function liveHolder(runDir: string): { pid: number } | { pid?: number; none: string } {
  let pid: number;
  try {
    pid = Number(readFileSync(holderPidPath(runDir), 'utf8').trim());
  } catch {
    return { none: 'no holder pid file' };
  }
  try {
    // argv: node, the entry, the run dir. A holder of another run dir (a pid file left stale, its pid
    // reused by another daemon's holder) holds another daemon's group.
    const [, entry, dir] = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (!entry?.endsWith(ENTRY) || readlinkSync(`/proc/${pid}/fd/${HOLDER_FD}`) !== 'anon_inode:[fanotify]') throw new Error('not a holder');
    if (dir === undefined || !sameDir(dir, runDir)) throw new Error(`the holder of another run dir (${dir ?? '?'})`);
    return { pid };
  } catch (err) {
    return { pid, none: errorText(err) };
  }
}

/** The pid of the live group holder of `runDir`, or null (`status` without a daemon says it lives on). */
export function holderPid(runDir: string): number | null {
  const held = liveHolder(runDir);
  return 'none' in held ? null : held.pid;
}

/** The live holder of `runDir` with a duplicate of its group (this process's), or why there is none. */
function holderGroup(runDir: string): { pid: number; fd: number } | { pid?: number; none: string } {
  const held = liveHolder(runDir);
  if ('none' in held) return held;
  try {
    return { pid: held.pid, fd: fdOfProcess(held.pid, HOLDER_FD) };
  } catch (err) {
    return { pid: held.pid, none: errorText(err) };
  }
}

/** The group of a holder a previous daemon left (this process's duplicate), or null. */
export function adoptHolder(runDir: string): { pid: number; fd: number } | null {
  const held = holderGroup(runDir);
  if ('fd' in held) {
    log.warn({ holderPid: held.pid }, 'adopted the fanotify group a previous daemon left');
    return held;
  }
  if (held.pid !== undefined) {
    log.info({ holderPid: held.pid, err: held.none }, 'no live fanotify group holder to adopt');
    rmSync(holderPidPath(runDir), { force: true });
  }
  return null;
}

/**
 * Without a daemon (`umount` cleaning up a dead daemon's mount): removes the marks on `paths` from the
 * group its holder keeps, so that the cache files are read without events again and the holder, with
 * no mark left, ends. Returns the holder's pid, or null when none runs. Only for files no mount that
 * still exists reads: a mark removed under a mounted erofs would let holes read as zeros.
 */
export function unmarkInHolder(runDir: string, paths: readonly string[]): number | null {
  const held = holderGroup(runDir);
  if (!('fd' in held)) {
    rmSync(retainedMarksPath(runDir), { force: true }); // the group they were kept in is gone
    return null;
  }
  try {
    for (const path of paths) {
      try {
        unmarkPreAccess(held.fd, path);
      } catch (err) {
        log.warn({ path, holderPid: held.pid, err: errorText(err) }, 'cannot remove a fanotify mark of a cleaned-up mount');
      }
    }
  } finally {
    closeQuietly(held.fd);
  }
  return held.pid;
}

/** Whether two paths name one directory (however each is spelled). */
export function sameDir(a: string, b: string): boolean {
  const x = statSync(a);
  const y = statSync(b);
  return x.dev === y.dev && x.ino === y.ino;
}

/** Ends the holder (the group closes with the supervisor's own fd). */
export function endHolder(runDir: string, pid: number): void {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // already gone
  }
  rmSync(holderPidPath(runDir), { force: true });
}
