/** Reader: directory blocks (§9): parsing with the kernel's checks, and the kernel's binary-search lookup. */
import { FormatError, type ErrorContext } from '../../util/errors.js';
import { decodeDirent } from './dirent.js';
import { DIRENT_SIZE, NAME_LEN } from './layout.js';

export interface RawDirEntry {
  name: Buffer;
  nid: number;
  fileType: number;
}

/**
 * Parse one directory block (`buf` = the block, or the dir's last partial block). `blksz` is the
 * full block size (nameoff bounds), `where` names the block in errors.
 */
export function parseDirBlock(buf: Buffer, blksz: number, dirNid: number, blockIndex: number, ctx: ErrorContext): RawDirEntry[] {
  const bad = (msg: string): FormatError =>
    new FormatError(`erofs: directory ${dirNid} block ${blockIndex}: ${msg}`, { ...ctx, nid: dirNid });
  if (buf.length < DIRENT_SIZE) throw bad(`only ${buf.length} bytes`);
  const nameoff0 = buf.readUInt16LE(8);
  if (nameoff0 < DIRENT_SIZE || nameoff0 >= blksz || nameoff0 > buf.length) throw bad(`invalid first nameoff ${nameoff0}`);
  const count = Math.floor(nameoff0 / DIRENT_SIZE);
  const out = new Array<RawDirEntry>(count);
  let next = decodeDirent(buf, 0);
  for (let i = 0; i < count; i++) {
    const d = next;
    let end: number;
    if (i + 1 < count) {
      next = decodeDirent(buf, (i + 1) * DIRENT_SIZE);
      end = next.nameoff;
    } else {
      const nul = buf.indexOf(0, d.nameoff);
      end = nul < 0 ? buf.length : nul;
    }
    if (d.nameoff < nameoff0 || end > buf.length) throw bad(`entry ${i} name at ${d.nameoff}..${end} is outside the block`);
    const len = end - d.nameoff;
    if (len < 1 || len > NAME_LEN) throw bad(`entry ${i} has a name of ${len} bytes`);
    if (d.nid > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`entry ${i} has nid ${d.nid} beyond 2^53`);
    out[i] = { name: buf.subarray(d.nameoff, end), nid: Number(d.nid), fileType: d.fileType };
  }
  return out;
}

/** Binary search among sorted entries (what the kernel's find_target_dirent does). */
export function searchBlock(entries: readonly RawDirEntry[], name: Buffer): RawDirEntry | undefined {
  let lo = 0;
  let hi = entries.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = Buffer.compare(name, entries[mid]!.name);
    if (c === 0) return entries[mid];
    if (c < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return undefined;
}

/**
 * The kernel's lookup: binary search over blocks by their first name, then inside the last block
 * whose first name sorts before the target. `block(i)` returns parsed block i.
 */
export function lookupInBlocks(nblocks: number, block: (i: number) => RawDirEntry[], name: Buffer): RawDirEntry | undefined {
  let head = 0;
  let back = nblocks - 1;
  let candidate: RawDirEntry[] | undefined;
  while (head <= back) {
    const mid = head + ((back - head) >>> 1);
    const entries = block(mid);
    const c = Buffer.compare(name, entries[0]!.name);
    if (c === 0) return entries[0];
    if (c > 0) {
      head = mid + 1;
      candidate = entries;
    } else {
      back = mid - 1;
    }
  }
  return candidate === undefined ? undefined : searchBlock(candidate, name);
}
