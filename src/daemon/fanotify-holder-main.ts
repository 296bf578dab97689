/**
 * The fanotify group holder (started by fanotify-holder.ts with the group as fd 3 and the run dir as
 * argv[2]). While a daemon runs (the run dir's daemon.pid is alive) it only holds the fd: the worker
 * answers events. When the daemon is gone it first takes the ignore masks off the marks the daemon's
 * records name, so complete blobs raise events again (nobody vouches for those files now: they may be
 * changed behind a dead daemon's back; it hears of its parent supervisor's death at once, by a
 * parent-death signal, and checks every 100 ms for the rest), then answers every event EIO itself:
 * a reader of a dead daemon's mount, or of a marked cache file, gets an error instead of waiting, and
 * never zeros or unchecked bytes. First those the dead worker read and left pending (by number: the
 * kernel answers the oldest event with a number, so one of this process's own events with the same
 * number would otherwise leave the old one pending, and the next daemon's fill-and-allow of the old
 * one's range would allow the new one unfilled); then what it reads itself. It exits when no daemon
 * runs and the group has no mark left: then no event can come, and closing it is harmless. Under
 * systemd, while systemd is starting the daemon again (`systemctl restart`, Restart= after a crash),
 * events wait for it instead. A daemon handing over (`daemon restart`) names its successor in the pid
 * file before it exits, so that gap is no death either.
 */
import { readFileSync, readSync } from 'node:fs';
import os from 'node:os';
import { AT_FDCWD, EIO, FAN_MARK_IGNORE, FAN_MARK_REMOVE, FAN_PRE_ACCESS, fanDenyErrno, fanotifyMark, respond } from '../native/fanotify.js';
import { O_NONBLOCK, closeQuietly } from '../native/fd.js';
import { fcntlInt } from '../native/libc.js';
import { parseEvents } from '../native/fanotify-events.js';
import { setParentDeathSignal } from '../native/process.js';
import { EventJournal } from '../transport/fanotify/journal.js';
import { livePid } from './client.js';
import { fanotifyJournalPath, sameDir } from './fanotify-holder.js';
import { recordFilePath } from './paths.js';
import { readRecordFile } from './records.js';
import { ownUnit, systemdBringsBack } from './systemd-unit.js';
import { orphanedWorkers } from './worker-process.js';

const GROUP = 3;
const CHECK_MS = 100;
const F_GETFL = 3;
const F_SETFL = 4;
const runDir = process.argv[2] ?? '';

function marks(): number {
  try {
    return readFileSync(`/proc/self/fdinfo/${GROUP}`, 'utf8').split('\n').filter((l) => l.startsWith('fanotify ino:')).length;
  } catch {
    return 0;
  }
}

/** Reads what is queued and denies it (EIO). */
function denyQueued(): void {
  const buf = Buffer.alloc(16 * 1024);
  for (;;) {
    let n: number;
    try {
      n = readSync(GROUP, buf, 0, buf.length, null);
    } catch {
      return; // EAGAIN: nothing queued
    }
    if (n <= 0) return;
    for (const ev of parseEvents(buf, n)) {
      try {
        respond(GROUP, ev.fd, fanDenyErrno(EIO));
      } catch {
        // no longer pending
      }
      if (ev.fd >= 0) closeQuietly(ev.fd);
    }
  }
}

/**
 * Denies (EIO) every event the dead daemon's workers read and did not answer: every fd number one of
 * them may have (journal.ts); the journal is emptied, as nothing in it is pending any more.
 */
function denyLeftBehind(): void {
  let journal: EventJournal;
  try {
    journal = EventJournal.open(fanotifyJournalPath(runDir));
  } catch {
    return; // no run dir any more: no daemon can adopt the group, and nothing pending can be told apart
  }
  try {
    for (let fd = 0, last = journal.sweepLimit(); fd <= last; fd++) {
      try {
        respond(GROUP, fd, fanDenyErrno(EIO));
      } catch {
        // not a pending event's number
      }
    }
    journal.reset();
  } finally {
    journal.close();
  }
}

/**
 * How long the dead daemon's workers get to end by themselves before they are killed: a worker whose
 * supervisor died first moves fuse-blobs' loops off the cache files (worker.ts), which keeps the dead
 * mounts from reading them unchecked.
 */
const ORPHAN_GRACE_MS = 1_500;
let orphansSeenAt: number | null = null;

/**
 * Kills the dead daemon's workers that still run once they had their grace; true while there are any.
 * The holder answers events itself only after: a worker checks that its supervisor lives just before it
 * answers, and one caught between the two (stopped, or not scheduled) would answer after the holder's
 * sweep, with a number that may by then be one of the holder's own events: allowed unfilled, read as zeros.
 */
function endOrphanedWorkers(): boolean {
  const ours = orphanedWorkers().filter((w) => {
    try {
      return sameDir(w.runDir, runDir);
    } catch {
      return false; // its run dir is gone
    }
  });
  if (ours.length === 0) {
    orphansSeenAt = null;
    return false;
  }
  orphansSeenAt ??= Date.now();
  if (Date.now() - orphansSeenAt < ORPHAN_GRACE_MS) return true;
  for (const w of ours) {
    try {
      process.kill(w.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  return true;
}

/** Data files the dead daemon's records marked (none known when the record file cannot be read: this process must not die of it). */
function markedPaths(): string[] {
  try {
    return (readRecordFile(recordFilePath(runDir))?.mounts ?? []).flatMap((m) => m.objects.flatMap((o) => (o.kind === 'fanotify-mark' ? [o.path] : [])));
  } catch {
    return [];
  }
}

// Never parked in read(2): the interval must keep checking whether a daemon runs.
fcntlInt(GROUP, F_SETFL, fcntlInt(GROUP, F_GETFL, 0) | O_NONBLOCK);
let alone = false;
/** The dead daemon's ignore masks are off (again set by a daemon that adopts the group). */
let masksOff = false;
let asking = false;
/** Under systemd: the daemon's unit, whose restart (`systemctl restart`, Restart= after a crash) readers wait for. */
const unit = ownUnit();

/** Whether systemd is starting the daemon again; any doubt answers no (readers then get EIO, never a wait without end). */
async function daemonComingBack(): Promise<boolean> {
  if (unit === null) return false;
  try {
    return await systemdBringsBack(unit);
  } catch {
    return false;
  }
}

/** The supervisor that started this holder (its parent), and whether it is known dead (a zombie still answers kill(0)). */
const parent = process.ppid;
let parentGone = false;

/** The live daemon of the run dir, if any. */
function daemon(): number | null {
  const pid = livePid(runDir);
  return pid !== null && parentGone && pid === parent ? null : pid;
}

/** Whether the daemon is gone; when it is, what is left to do (see the header). */
function check(): void {
  if (asking) return;
  if (daemon() !== null) {
    alone = false;
    masksOff = false;
    return;
  }
  asking = true;
  void daemonComingBack().then((back) => {
    asking = false;
    // A daemon that systemd brings back adopts this group and answers what is queued, as after a crash.
    if (back || daemon() !== null) return;
    // The masks first, before the workers are ended: nobody vouches for a complete blob's file now.
    if (!masksOff) {
      masksOff = true;
      for (const path of markedPaths()) fanotifyMark(GROUP, FAN_MARK_REMOVE | FAN_MARK_IGNORE, FAN_PRE_ACCESS, AT_FDCWD, path);
    }
    if (!alone && endOrphanedWorkers()) {
      setTimeout(check, 20); // goes on once they are gone
      return;
    }
    if (!alone) {
      alone = true;
      denyLeftBehind();
    }
    denyQueued();
    if (marks() === 0) process.exit(0);
  });
}

// Holding the group is this process's first duty: a check that throws (an unreadable record file, a
// bug) is tried again at the next interval, never the end of the process, whose fd may be the group's
// last (closing it would allow every pending event unfilled: holes read as zeros).
process.on('uncaughtException', () => undefined);
process.on('unhandledRejection', () => undefined);
process.on('SIGTERM', () => process.exit(0));
// The supervisor that started this holder is its parent: its death is known at once, not at the next
// check, so the ignore masks go before anyone can change a complete blob's file behind its back.
process.on('SIGUSR2', () => {
  parentGone = true;
  check();
});
try {
  setParentDeathSignal(os.constants.signals.SIGUSR2);
} catch {
  // the checks below still run
}
if (process.ppid !== parent) { // it died before the signal was asked for
  parentGone = true;
  check();
}
setInterval(check, CHECK_MS);
