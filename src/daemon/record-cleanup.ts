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
import { MountError, errorText } from '../util/errors.js';
import { describeObject, unmakeObject } from '../transport/kernel-objects.js';

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

/** Undoes a recorded mount newest object first; refuses while the daemon that owns it is alive. */
export async function cleanupFromRecord(mountpoint: string, dir = runDir()): Promise<MountRecord> {
  const record = findRecord(mountpoint, dir);
  if (!record) throw new MountError(`${resolve(mountpoint)} is not mounted by ondemand (no daemon running and no record of it)`, { mountpoint });
  const owner = livePid(dir);
  if (owner !== null) throw new MountError(`the daemon (pid ${owner}) still owns ${record.mountpoint} but does not answer; try again`, { mountpoint });
  const failures: string[] = [];
  for (const o of [...record.objects].reverse()) {
    try {
      await unmakeObject(o);
    } catch (err) {
      failures.push(`${describeObject(o)}: ${errorText(err)}`);
    }
  }
  if (failures.length > 0) throw new MountError(`could not clean up ${record.mountpoint}: ${failures.join('; ')}`, { mountpoint: record.mountpoint });
  dropRecord(recordFilePath(dir), record.id);
  return record;
}
