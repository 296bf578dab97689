/**
 * Writer step 2: xattrs. A (name, value) pair used by two or more inodes goes once into the shared
 * area (own blocks at xattr_blkaddr, ids in 4-byte units); the rest stay inline after the inode.
 */
import { FormatError } from '../../util/errors.js';
import { NAME_LEN, XATTR_HEADER_SIZE, XATTR_MAX_SHARED } from './layout.js';
import type { Xattr } from './model.js';
import { encodeXattrEntry, encodeXattrHeader, splitXattrName, xattrEntrySize, type XattrKey } from './xattr-entry.js';

const MAX_VALUE = 0xffff;
const MAX_ICOUNT = 0xffff;

interface Entry {
  key: XattrKey;
  value: Buffer;
  id: string;
}

export interface InodeXattrs {
  sharedIds: number[];
  inline: Entry[];
  /** i_xattr_icount: 0 when the inode has none (never 1). */
  icount: number;
  /** Bytes of the inline body (0 or 12 + 4 * (icount - 1)). */
  size: number;
}

export interface XattrPlan {
  perInode: InodeXattrs[];
  /** Shared area contents (a whole number of blocks, or empty). */
  shared: Buffer;
}

const NONE: InodeXattrs = { sharedIds: [], inline: [], icount: 0, size: 0 };

function entriesOf(xattrs: readonly Xattr[], where: string): Entry[] {
  const out: Entry[] = [];
  const names = new Set<string>();
  for (const x of xattrs) {
    const key = splitXattrName(x.name);
    if (key === undefined) throw new FormatError(`erofs writer: xattr ${JSON.stringify(x.name)} on ${where} has no erofs prefix (user., trusted., security., system.posix_acl_*)`);
    if (key.suffix.length > NAME_LEN) throw new FormatError(`erofs writer: xattr name ${JSON.stringify(x.name)} on ${where} is too long`);
    if (key.suffix.length === 0 && key.index !== 2 && key.index !== 3) throw new FormatError(`erofs writer: xattr ${JSON.stringify(x.name)} on ${where} has an empty name`);
    if (x.value.length > MAX_VALUE) throw new FormatError(`erofs writer: xattr ${x.name} on ${where} has a ${x.value.length}-byte value (max ${MAX_VALUE})`);
    if (names.has(x.name)) throw new FormatError(`erofs writer: xattr ${x.name} appears twice on ${where}`);
    names.add(x.name);
    out.push({ key, value: x.value, id: `${key.index}\u0000${key.suffix.toString('latin1')}\u0000${x.value.toString('latin1')}` });
  }
  return out;
}

/** Decide sharing and sizes for every inode's xattrs (`lists[i]` = inode i's xattrs). */
export function planXattrs(lists: readonly (readonly Xattr[])[], blksz: number, describe: (i: number) => string): XattrPlan {
  const entries = lists.map((l, i) => (l.length === 0 ? [] : entriesOf(l, describe(i))));
  const uses = new Map<string, number>();
  for (const list of entries) for (const e of list) uses.set(e.id, (uses.get(e.id) ?? 0) + 1);

  // Shared area: entries in first-use order, 4-byte aligned, never crossing a block when they fit in one.
  const sharedOffset = new Map<string, number>();
  const sharedEntries: { e: Entry; at: number }[] = [];
  let pos = 0;
  for (const list of entries) {
    for (const e of list) {
      if ((uses.get(e.id) ?? 0) < 2 || sharedOffset.has(e.id)) continue;
      const size = xattrEntrySize(e.key.suffix.length, e.value.length);
      if (size <= blksz && (pos % blksz) + size > blksz) pos = Math.ceil(pos / blksz) * blksz;
      sharedOffset.set(e.id, pos);
      sharedEntries.push({ e, at: pos });
      pos += size;
    }
  }
  const shared = Buffer.alloc(Math.ceil(pos / blksz) * blksz);
  for (const { e, at } of sharedEntries) encodeXattrEntry(e.key, e.value, shared, at);

  const perInode = entries.map((list, i): InodeXattrs => {
    if (list.length === 0) return NONE;
    const sharedIds: number[] = [];
    const inline: Entry[] = [];
    for (const e of list) {
      const off = sharedOffset.get(e.id);
      if (off !== undefined && sharedIds.length < XATTR_MAX_SHARED) sharedIds.push(off / 4);
      else inline.push(e);
    }
    let size = XATTR_HEADER_SIZE + 4 * sharedIds.length;
    for (const e of inline) size += xattrEntrySize(e.key.suffix.length, e.value.length);
    const icount = (size - XATTR_HEADER_SIZE) / 4 + 1;
    if (icount > MAX_ICOUNT) throw new FormatError(`erofs writer: xattrs of ${describe(i)} take ${size} bytes (too many for one inode)`);
    return { sharedIds, inline, icount, size };
  });
  return { perInode, shared };
}

/** Write an inode's xattr body at `at` (exactly `x.size` bytes). */
export function encodeInodeXattrs(x: InodeXattrs, buf: Buffer, at: number): void {
  if (x.size === 0) return;
  let pos = at + encodeXattrHeader(x.sharedIds, buf, at);
  for (const e of x.inline) pos += encodeXattrEntry(e.key, e.value, buf, pos);
}
