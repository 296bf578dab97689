/** Reader: decoding and checking one inode (§5) into what the rest of the reader needs. */
import { FormatError, type ErrorContext } from '../../util/errors.js';
import { decodeInodeCore, decodeRdev, inodeSize, isExtendedFormat } from './inode-core.js';
import {
  CHUNK_FORMAT_48BIT, CHUNK_FORMAT_BLKBITS_MASK, CHUNK_FORMAT_INDEXES, CHUNK_FORMAT_KNOWN_BITS,
  DATALAYOUT_CHUNK_BASED, DATALAYOUT_COMPRESSED_COMPACT, DATALAYOUT_COMPRESSED_FULL, DATALAYOUT_FLAT_INLINE,
  DATALAYOUT_FLAT_PLAIN, I_NLINK_1, ISLOT_SIZE, PERM_MASK, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT,
  S_IFREG, S_IFSOCK, xattrIbodySize,
} from './layout.js';
import type { NodeKind } from './model.js';
import type { ErofsSuperblock } from './read-super.js';

export type ErofsLayout = 'flat-plain' | 'flat-inline' | 'chunk-based';

/** The public view of an inode. */
export interface ErofsInodeInfo {
  nid: number;
  kind: NodeKind;
  /** mode & 0o7777 */
  perm: number;
  uid: number;
  gid: number;
  size: number;
  mtime: bigint;
  mtimeNsec: number;
  nlink: number;
  /** 0 unless chardev/blockdev. */
  rdevMajor: number;
  rdevMinor: number;
  layout: ErofsLayout;
  /** 64-byte extended inode (else 32-byte compact). */
  extended: boolean;
  /** On-disk i_ino (32-bit compatibility number; st_ino on 64-bit kernels is the nid). */
  ino: number;
}

/** Everything the reader needs to find an inode's xattrs and data. */
export interface InodeRecord extends ErofsInodeInfo {
  /** Byte offset of the inode on device 0. */
  offset: number;
  inodeSize: number;
  xattrSize: number;
  /** i_u as raw_blkaddr (flat layouts). */
  rawBlkaddr: number;
  /** CHUNK_BASED: chunk size bits and whether entries are 8-byte indexes. */
  chunkBits: number;
  chunkIndexes: boolean;
  /** Directory stored without `.` (newest format, i_format bit 4). */
  dotOmitted: boolean;
}

const KIND_OF_MODE = new Map<number, NodeKind>([
  [S_IFREG, 'file'], [S_IFDIR, 'dir'], [S_IFLNK, 'symlink'], [S_IFCHR, 'chardev'], [S_IFBLK, 'blockdev'],
  [S_IFIFO, 'fifo'], [S_IFSOCK, 'socket'],
]);

export function readInodeRecord(
  sb: ErofsSuperblock, read: (offset: number, length: number) => Buffer, imageSize: number, nid: number, ctx: ErrorContext,
): InodeRecord {
  const bad = (msg: string): FormatError => new FormatError(`erofs: inode ${nid}: ${msg}`, { ...ctx, nid });
  if (!Number.isSafeInteger(nid) || nid < 0) throw new FormatError(`erofs: bad nid ${nid}`, ctx);
  const offset = sb.metaBlkaddr * sb.blockSize + nid * ISLOT_SIZE;
  if (offset + 32 > imageSize) throw bad(`at byte ${offset} is past the end of the image (${imageSize} bytes)`);
  const extended = isExtendedFormat(read(offset, 2).readUInt16LE(0));
  const isize = inodeSize(extended);
  if (offset + isize > imageSize) throw bad(`at byte ${offset} is truncated`);
  const core = decodeInodeCore(read(offset, isize), 0);

  if (core.formatExtra & ~I_NLINK_1) throw bad(`unsupported i_format bits 0x${core.formatExtra.toString(16)}`);
  if (core.datalayout === DATALAYOUT_COMPRESSED_FULL || core.datalayout === DATALAYOUT_COMPRESSED_COMPACT) {
    throw bad(`compressed data layout ${core.datalayout} is not supported`);
  }
  if (core.datalayout !== DATALAYOUT_FLAT_PLAIN && core.datalayout !== DATALAYOUT_FLAT_INLINE && core.datalayout !== DATALAYOUT_CHUNK_BASED) {
    throw bad(`unknown data layout ${core.datalayout}`);
  }
  const kind = KIND_OF_MODE.get(core.mode & S_IFMT);
  if (kind === undefined) throw bad(`unknown file type in mode 0o${core.mode.toString(8)}`);
  if (!Number.isFinite(core.size)) throw bad('size beyond 2^53');

  let chunkBits = 0;
  let chunkIndexes = false;
  if (core.datalayout === DATALAYOUT_CHUNK_BASED) {
    const format = core.u & 0xffff;
    if (format & ~CHUNK_FORMAT_KNOWN_BITS || format & CHUNK_FORMAT_48BIT) throw bad(`unsupported chunk format 0x${format.toString(16)}`);
    chunkBits = sb.blkszbits + (format & CHUNK_FORMAT_BLKBITS_MASK);
    chunkIndexes = (format & CHUNK_FORMAT_INDEXES) !== 0;
  }
  const nlink1 = (core.formatExtra & I_NLINK_1) !== 0;
  const dev = kind === 'chardev' || kind === 'blockdev' ? decodeRdev(core.u) : { major: 0, minor: 0 };
  return {
    nid, kind, perm: core.mode & PERM_MASK, uid: core.uid, gid: core.gid,
    size: core.size,
    // Compact inodes carry no time of their own: build time (+ the newest format's offset at +12).
    mtime: extended ? core.mtime : sb.buildTime + core.mtime,
    mtimeNsec: extended ? core.mtimeNsec : sb.buildTimeNsec,
    nlink: nlink1 && kind !== 'dir' ? 1 : core.nlink,
    rdevMajor: dev.major, rdevMinor: dev.minor,
    layout: core.datalayout === DATALAYOUT_FLAT_PLAIN ? 'flat-plain' : core.datalayout === DATALAYOUT_FLAT_INLINE ? 'flat-inline' : 'chunk-based',
    extended, ino: core.ino,
    offset, inodeSize: isize, xattrSize: xattrIbodySize(core.xattrIcount), rawBlkaddr: core.u,
    chunkBits, chunkIndexes, dotOmitted: nlink1 && kind === 'dir',
  };
}

/** The public subset (a copy, so callers cannot disturb the cache). */
export function publicInfo(r: InodeRecord): ErofsInodeInfo {
  return {
    nid: r.nid, kind: r.kind, perm: r.perm, uid: r.uid, gid: r.gid, size: r.size, mtime: r.mtime, mtimeNsec: r.mtimeNsec,
    nlink: r.nlink, rdevMajor: r.rdevMajor, rdevMinor: r.rdevMinor, layout: r.layout, extended: r.extended, ino: r.ino,
  };
}
