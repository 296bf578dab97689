/**
 * `ondemand umount` without a daemon: undo a mount from the supervisor's record file (lazy umount of
 * erofs and FUSE, loop detach), for when the daemon was killed or crashed.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { livePid } from './client.js';
import { recordFilePath, runDir } from './paths.js';
import { dropRecord, readRecordFile } from './records.js';
import type { MountRecord } from '../mount/types.js';
import type { MarkedFile } from '../transport/fanotify/group.js';
import { MountError, errorText } from '../util/errors.js';
import { describeObject, unmakeObject } from '../transport/kernel-objects.js';
import { retainMarks, retainedMarks, unmarkInHolder } from './fanotify-holder.js';

function canonical(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

export function findRecord(mountpoint: string, dir = runDir()): MountRecord | undefined {
  const file = readRecordFile(recordFilePath(dir));
  const want = canonical(mountpoint);
  return file?.mounts.find((m) => m.mountpoint === want || m.mountpoint === resolve(mountpoint));
}

/** What a daemon-less cleanup did about the dead daemon's fanotify group holder. */
export interface HolderOutcome {
  pid: number;
  /** The mount was detached busy: its marks stay, and the holder with them (reads of those cache files fail until a daemon runs). */
  kept: boolean;
}

/**
 * Undoes a recorded mount newest object first; refuses while the daemon that owns it is alive. Its
 * fanotify marks (in the group the dead daemon's holder keeps) go too, unless the mount was detached
 * busy or another recorded or detached mount uses the same files: without them the cache files are
 * read without events again, and the holder, with no mark left, ends.
 */
export async function cleanupFromRecord(mountpoint: string, dir = runDir()): Promise<{ record: MountRecord; holder: HolderOutcome | null }> {
  const record = findRecord(mountpoint, dir);
  if (!record) throw new MountError(`${resolve(mountpoint)} is not mounted by ondemand (no daemon running and no record of it)`, { mountpoint });
  const owner = livePid(dir);
  if (owner !== null) throw new MountError(`the daemon (pid ${owner}) still owns ${record.mountpoint} but does not answer; try again`, { mountpoint });
  const failures: string[] = [];
  let busy = false;
  for (const o of [...record.objects].reverse()) {
    if (o.kind === 'fanotify-mark') continue;
    try {
      if (await unmakeObject(o) === 'detached-busy') busy = true;
    } catch (err) {
      failures.push(`${describeObject(o)}: ${errorText(err)}`);
    }
  }
  if (failures.length > 0) throw new MountError(`could not clean up ${record.mountpoint}: ${failures.join('; ')}`, { mountpoint: record.mountpoint });
  dropRecord(recordFilePath(dir), record.id);
  const marks = record.objects.flatMap((o) => (o.kind === 'fanotify-mark' ? [o] : []));
  if (marks.length === 0) return { record, holder: null };
  if (busy) {
    retainMarks(dir, marks);
    const pid = unmarkInHolder(dir, []);
    return { record, holder: pid === null ? null : { pid, kept: true } };
  }
  const inUse: MarkedFile[] = [
    ...(readRecordFile(recordFilePath(dir))?.mounts ?? []).flatMap((m) => m.objects.flatMap((o) => (o.kind === 'fanotify-mark' ? [o] : []))),
    ...retainedMarks(dir),
  ];
  const free = marks.filter((m) => !inUse.some((u) => u.path === m.path || (u.file !== undefined && u.file === m.file)));
  const pid = unmarkInHolder(dir, free.map((m) => m.path));
  return { record, holder: pid === null ? null : { pid, kept: false } };
}
