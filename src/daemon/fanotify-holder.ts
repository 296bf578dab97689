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
import { errorText } from '../util/errors.js';
import { log } from '../util/log.js';

const HOLDER_FD = 3;
const ENTRY = 'fanotify-holder-main.js';

export const holderPidPath = (runDir: string): string => join(runDir, 'fanotify-holder.pid');
export const fanotifyJournalPath = (runDir: string): string => join(runDir, 'fanotify.journal');

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

/** The group of a holder a previous daemon left (this process's duplicate), or null. */
export function adoptHolder(runDir: string): { pid: number; fd: number } | null {
  let pid: number;
  try {
    pid = Number(readFileSync(holderPidPath(runDir), 'utf8').trim());
  } catch {
    return null;
  }
  try {
    // argv: node, the entry, the run dir. A holder of another run dir (a pid file left stale, its pid
    // reused by another daemon's holder) holds another daemon's group.
    const [, entry, dir] = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (!entry?.endsWith(ENTRY) || readlinkSync(`/proc/${pid}/fd/${HOLDER_FD}`) !== 'anon_inode:[fanotify]') throw new Error('not a holder');
    if (dir === undefined || !sameDir(dir, runDir)) throw new Error(`the holder of another run dir (${dir ?? '?'})`);
    const fd = fdOfProcess(pid, HOLDER_FD);
    log.warn({ holderPid: pid }, 'adopted the fanotify group a previous daemon left');
    return { pid, fd };
  } catch (err) {
    log.info({ holderPid: pid, err: errorText(err) }, 'no live fanotify group holder to adopt');
    rmSync(holderPidPath(runDir), { force: true });
    return null;
  }
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
