/**
 * Reply payloads of the image's metadata requests, built the same way whoever answers them: the main
 * thread (requests.ts) or the reader thread (reader-metadata.ts). Synchronous and free of side effects.
 */
import { OndemandError } from '../util/errors.js';
import { ERANGE } from './errno.js';
import {
  ENTRY_OUT_SIZE, direntPlusSize, direntSize, direntType, encodeEntryOut, encodeGetxattrOut, writeDirent, writeEntryOut, type FuseAttr,
} from './layout.js';
import type { DirEntry } from './types.js';

export interface EntryTimeouts {
  entryTimeout: number;
  attrTimeout: number;
}

const NO_NODE: FuseAttr = { ino: 0, size: 0, mode: 0, nlink: 0, uid: 0, gid: 0 };

/** entry_out of a LOOKUP that found `attr`. */
export function entryReply(t: EntryTimeouts, attr: FuseAttr): Buffer {
  return encodeEntryOut(attr.ino, 0, t.entryTimeout, t.attrTimeout, attr);
}

/** A negative entry (node id 0) the kernel caches: an image never gains files. */
export function negativeEntryReply(t: EntryTimeouts): Buffer {
  return encodeEntryOut(0, 0, t.entryTimeout, 0, NO_NODE);
}

/** getxattr/listxattr protocol: size 0 asks for the length; a too small buffer is ERANGE. */
export function sizedReply(data: Buffer, size: number): Buffer {
  if (size === 0) return encodeGetxattrOut(data.length);
  if (data.length > size) throw new OndemandError('EFUSE', 'xattr buffer too small', {}, { errno: ERANGE });
  return data;
}

/** LISTXATTR's payload: each name NUL-terminated. */
export function xattrNames(names: readonly string[]): Buffer {
  return Buffer.from(names.map((n) => `${n}\0`).join(''));
}

/**
 * One page of a READDIR or READDIRPLUS reply, written into out[at, at + size): the entries from index
 * `offset` on, an entry's offset being its index + 1 (so telldir/seekdir positions stay valid for the
 * handle's life). READDIRPLUS hands each entry's node and attributes along (node id 0 for `.` and
 * `..`, which the kernel skips). Returns the bytes written.
 */
export function writeDirPage(out: Buffer, at: number, size: number, entries: readonly DirEntry[], offset: number, plus: boolean, t: EntryTimeouts): number {
  let used = 0;
  for (let i = offset; i < entries.length; i++) {
    const e = entries[i]!;
    const name = typeof e.name === 'string' ? Buffer.from(e.name) : e.name;
    const type = direntType(e.mode);
    if (!plus) {
      if (used + direntSize(name.length) > size) break;
      used += writeDirent(out, at + used, e.ino, i + 1, type, name);
      continue;
    }
    if (used + direntPlusSize(name.length) > size) break;
    if (e.attr) writeEntryOut(out, at + used, e.attr.ino, 0, t.entryTimeout, t.attrTimeout, e.attr);
    else writeEntryOut(out, at + used, 0, 0, 0, 0, NO_NODE);
    used += ENTRY_OUT_SIZE;
    used += writeDirent(out, at + used, e.ino, i + 1, type, name);
  }
  return used;
}
