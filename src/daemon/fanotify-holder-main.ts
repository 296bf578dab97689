/**
 * The fanotify group holder (started by fanotify-holder.ts with the group as fd 3 and the run dir as
 * argv[2]). While a daemon runs (the run dir's daemon.pid is alive) it only holds the fd: the worker
 * answers events. When the daemon is gone it first takes the ignore masks off the marks the daemon's
 * records name, so complete blobs raise events again (nobody vouches for those files now: they may be
 * changed behind a dead daemon's back), then answers every event EIO itself: a reader of a dead
 * daemon's mount, or of a marked cache file, gets an error instead of waiting, and never zeros or
 * unchecked bytes. It exits when no daemon runs and the group has no mark left: then no event can
 * come, and closing it is harmless.
 */
import { closeSync, readFileSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { AT_FDCWD, FAN_MARK_IGNORE, FAN_MARK_REMOVE, FAN_PRE_ACCESS, fanotifyMark } from '../native/fanotify.js';

const GROUP = 3;
const CHECK_MS = 100;
const FAN_DENY = 0x2;
const EIO = 5;
const runDir = process.argv[2] ?? '';

function daemonAlive(): boolean {
  try {
    const pid = Number(readFileSync(join(runDir, 'daemon.pid'), 'utf8').trim());
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function marks(): number {
  try {
    return readFileSync(`/proc/self/fdinfo/${GROUP}`, 'utf8').split('\n').filter((l) => l.startsWith('fanotify ino:')).length;
  } catch {
    return 0;
  }
}

/** Reads what is queued (the fd is non-blocking: the worker's event thread set it) and denies it. */
function denyQueued(): void {
  const buf = Buffer.alloc(16 * 1024);
  for (;;) {
    let n: number;
    try {
      n = readSync(GROUP, buf, 0, buf.length, null);
    } catch {
      return; // EAGAIN: nothing queued
    }
    for (let at = 0; at + 24 <= n;) {
      const len = buf.readUInt32LE(at);
      const fd = buf.readInt32LE(at + 16);
      const response = Buffer.alloc(8);
      response.writeInt32LE(fd, 0);
      response.writeUInt32LE(FAN_DENY | (EIO << 24), 4);
      try {
        writeSync(GROUP, response);
      } catch {
        // no longer pending
      }
      if (fd >= 0) closeSync(fd);
      if (len < 24) break;
      at += len;
    }
    if (n <= 0) return;
  }
}

/** Data files the dead daemon's records marked (mounts.json: mounts[].objects[] of kind fanotify-mark). */
function markedPaths(): string[] {
  try {
    const file = JSON.parse(readFileSync(join(runDir, 'mounts.json'), 'utf8')) as { mounts?: { objects?: { kind?: string; path?: string }[] }[] };
    return (file.mounts ?? []).flatMap((m) => (m.objects ?? []).flatMap((o) => (o.kind === 'fanotify-mark' && typeof o.path === 'string' ? [o.path] : [])));
  } catch {
    return [];
  }
}

let alone = false;
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {
  if (daemonAlive()) {
    alone = false;
    return;
  }
  if (!alone) {
    alone = true;
    for (const path of markedPaths()) fanotifyMark(GROUP, FAN_MARK_REMOVE | FAN_MARK_IGNORE, FAN_PRE_ACCESS, AT_FDCWD, path);
  }
  denyQueued();
  if (marks() === 0) process.exit(0);
}, CHECK_MS);
