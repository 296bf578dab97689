/**
 * The record file: every mount and the kernel objects it made, written atomically by the supervisor
 * after each change. It is what `ondemand umount` undoes when the daemon is gone.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { MountRecord } from '../mount/types.js';
import type { RecordFile } from './protocol.js';
import { FormatError, systemCode } from '../util/errors.js';
import { makeDirs } from '../util/make-dirs.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';

/** What is wrong with a kernel object of a record, or undefined when it has what undoing it needs. */
function objectProblem(o: unknown): string | undefined {
  if (!isObject(o)) return 'an object that is not one';
  switch (o.kind) {
    case 'fuse': return isString(o.path) && Number.isInteger(o.fd) ? undefined : 'a FUSE object without path or fd';
    case 'loop': return isString(o.device) ? undefined : 'a loop object without device';
    case 'mount': return isString(o.target) && isString(o.fstype) ? undefined : 'a mount object without target or fstype';
    case 'dir': return isString(o.path) ? undefined : 'a dir object without path';
    case 'fanotify-mark': return isString(o.path) ? undefined : 'a fanotify mark without path';
    default: return `an object of unknown kind ${JSON.stringify(o.kind)}`;
  }
}

/** What is wrong with a parsed record file, or undefined when every mount has what undoing it needs. */
function recordFileProblem(file: unknown): string | undefined {
  if (!isObject(file) || !Array.isArray(file.mounts)) return 'no list of mounts';
  for (const [i, m] of file.mounts.entries()) {
    if (!isObject(m) || !isString(m.id) || !isString(m.mountpoint) || !isString(m.image) || !Array.isArray(m.objects)) {
      return `mount ${i + 1} lacks its id, mountpoint, image or objects`;
    }
    for (const o of m.objects) {
      const problem = objectProblem(o);
      if (problem) return `mount ${m.mountpoint} has ${problem}`;
    }
  }
  return undefined;
}

/**
 * The record file, or null when there is none. One that cannot be read as records (cut short by a
 * crash, edited by hand) is an error, never taken for "no mounts": the mounts it lists would be left
 * behind, and the next write would replace it.
 */
export function readRecordFile(path: string): RecordFile | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (systemCode(err) === 'ENOENT') return null;
    throw err;
  }
  let parsed: unknown;
  let problem: string | undefined;
  try {
    parsed = JSON.parse(text);
    problem = recordFileProblem(parsed);
  } catch {
    problem = text.length === 0 ? 'empty' : 'not JSON';
  }
  if (problem !== undefined) {
    throw new FormatError(`mount record file ${path} is not valid (${problem}): unmount by hand what it lists (see findmnt), then remove it`, { path });
  }
  return parsed as RecordFile;
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
