/**
 * The record file: every mount and the kernel objects it made, written atomically by the supervisor
 * after each change. It is what `ondemand umount` undoes when the daemon is gone.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { MountRecord } from '../mount/types.js';
import type { RecordFile } from './protocol.js';
import { systemCode } from '../util/errors.js';
import { makeDirs } from '../util/make-dirs.js';

export function readRecordFile(path: string): RecordFile | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (systemCode(err) === 'ENOENT') return null;
    throw err;
  }
  const parsed = JSON.parse(text) as RecordFile;
  if (!Array.isArray(parsed.mounts)) return null;
  return parsed;
}

export function writeRecordFile(path: string, file: RecordFile): void {
  makeDirs(dirname(path));
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(file, null, 1));
  renameSync(tmp, path);
}

/** Removes one mount's record (after the CLI cleaned it up itself). */
export function dropRecord(path: string, id: string): void {
  const file = readRecordFile(path);
  if (!file) return;
  writeRecordFile(path, { ...file, mounts: file.mounts.filter((m: MountRecord) => m.id !== id) });
}
