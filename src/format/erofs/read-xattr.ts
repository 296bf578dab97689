/** Reader: an inode's xattrs (§11): inline entries first, then shared ones (the kernel's listxattr order). */
import { FormatError, type ErrorContext } from '../../util/errors.js';
import { XATTR_ENTRY_SIZE, XATTR_HEADER_SIZE, XATTR_LONG_PREFIX_BIT } from './layout.js';
import type { Xattr } from './model.js';
import type { InodeRecord } from './read-inode.js';
import { decodeXattrEntryHead, decodeXattrSharedCount, joinXattrName, xattrEntrySize } from './xattr-entry.js';

export interface XattrContext {
  blockSize: number;
  xattrBlkaddr: number;
  imageSize: number;
  read(offset: number, length: number): Buffer;
  ctx: ErrorContext;
}

export function readXattrs(x: XattrContext, ino: InodeRecord): Xattr[] {
  if (ino.xattrSize === 0) return [];
  const bad = (msg: string): FormatError => new FormatError(`erofs: inode ${ino.nid} xattrs: ${msg}`, { ...x.ctx, nid: ino.nid });
  const bodyAt = ino.offset + ino.inodeSize;
  if (bodyAt + ino.xattrSize > x.imageSize) throw bad('body is past the end of the image');
  const body = x.read(bodyAt, ino.xattrSize);
  if (body.length < XATTR_HEADER_SIZE) return [];
  const shared = decodeXattrSharedCount(body, 0);
  if (XATTR_HEADER_SIZE + 4 * shared > body.length) throw bad(`${shared} shared ids do not fit the ${body.length}-byte body`);

  const inline: Xattr[] = [];
  const addEntry = (buf: Buffer, at: number, out: Xattr[]): number => {
    if (at + XATTR_ENTRY_SIZE > buf.length) throw bad(`entry at ${at} is truncated`);
    const h = decodeXattrEntryHead(buf, at);
    const size = xattrEntrySize(h.nameLen, h.valueSize);
    if (at + XATTR_ENTRY_SIZE + h.nameLen + h.valueSize > buf.length) throw bad(`entry at ${at} overruns its area`);
    if (h.nameIndex & XATTR_LONG_PREFIX_BIT) throw bad('long xattr name prefixes are not supported');
    const nameAt = at + XATTR_ENTRY_SIZE;
    const name = joinXattrName(h.nameIndex, buf.subarray(nameAt, nameAt + h.nameLen));
    // Like the kernel, entries with a prefix Linux does not expose (e.g. lustre.) are skipped.
    if (name !== undefined) {
      out.push({ name, value: Buffer.from(buf.subarray(nameAt + h.nameLen, nameAt + h.nameLen + h.valueSize)) });
    }
    return size;
  };

  let pos = XATTR_HEADER_SIZE + 4 * shared;
  while (pos < body.length) pos += addEntry(body, pos, inline);

  const sharedOut: Xattr[] = [];
  for (let i = 0; i < shared; i++) {
    const id = body.readUInt32LE(XATTR_HEADER_SIZE + 4 * i);
    const at = x.xattrBlkaddr * x.blockSize + id * 4;
    if (at + XATTR_ENTRY_SIZE > x.imageSize) throw bad(`shared xattr ${id} is past the end of the image`);
    const h = decodeXattrEntryHead(x.read(at, XATTR_ENTRY_SIZE), 0);
    const len = XATTR_ENTRY_SIZE + h.nameLen + h.valueSize;
    if (at + len > x.imageSize) throw bad(`shared xattr ${id} is past the end of the image`);
    addEntry(x.read(at, len), 0, sharedOut);
  }
  return inline.concat(sharedOut);
}
