/** Encode/decode of the compact (32-byte) and extended (64-byte) inode cores (§5), and rdev (§5.5). */
import {
  I_DATALAYOUT_MASK, I_DATALAYOUT_SHIFT, I_VERSION_EXTENDED, IC, IE, INODE_COMPACT_SIZE, INODE_EXTENDED_SIZE,
} from './layout.js';

export interface InodeCore {
  extended: boolean;
  datalayout: number;
  /** i_format bits other than version and layout (bit 4 = NLINK_1/DOT_OMITTED in newest images). */
  formatExtra: number;
  xattrIcount: number;
  mode: number;
  nlink: number;
  /** Up to 2^53 - 1 here; the reader rejects larger. */
  size: number;
  /** i_u: raw_blkaddr, rdev or chunk_info (u16 format + u16 reserved). */
  u: number;
  ino: number;
  uid: number;
  gid: number;
  /** Extended: i_mtime (signed seconds). Compact: the u32 at +12 (seconds after build_time in newest images). */
  mtime: bigint;
  /** Extended only; 0 for compact. */
  mtimeNsec: number;
}

export function inodeSize(extended: boolean): number {
  return extended ? INODE_EXTENDED_SIZE : INODE_COMPACT_SIZE;
}

/** i_format of the first u16 of an inode: is it extended? (the first thing a reader needs). */
export function isExtendedFormat(format: number): boolean {
  return (format & I_VERSION_EXTENDED) !== 0;
}

/** Write the inode core; the caller guarantees compact fields fit (u16 uid/gid/nlink, u32 size). */
export function encodeInodeCore(ino: InodeCore, buf: Buffer, at: number): void {
  const format = (ino.extended ? I_VERSION_EXTENDED : 0) | (ino.datalayout << I_DATALAYOUT_SHIFT) | ino.formatExtra;
  if (ino.extended) {
    // Explicit zero writes: Buffer.fill on a small range of a big image costs far more than this.
    buf.writeUInt16LE(format, at + IE.format);
    buf.writeUInt16LE(0, at + IE.nb);
    for (let k = 0; k < 16; k += 4) buf.writeUInt32LE(0, at + IE.reserved2 + k);
    buf.writeUInt16LE(ino.xattrIcount, at + IE.xattrIcount);
    buf.writeUInt16LE(ino.mode, at + IE.mode);
    buf.writeBigUInt64LE(BigInt(ino.size), at + IE.size);
    buf.writeUInt32LE(ino.u >>> 0, at + IE.u);
    buf.writeUInt32LE(ino.ino >>> 0, at + IE.ino);
    buf.writeUInt32LE(ino.uid >>> 0, at + IE.uid);
    buf.writeUInt32LE(ino.gid >>> 0, at + IE.gid);
    buf.writeBigUInt64LE(BigInt.asUintN(64, ino.mtime), at + IE.mtime);
    buf.writeUInt32LE(ino.mtimeNsec >>> 0, at + IE.mtimeNsec);
    buf.writeUInt32LE(ino.nlink >>> 0, at + IE.nlink);
  } else {
    buf.writeUInt16LE(format, at + IC.format);
    buf.writeUInt32LE(0, at + IC.reserved2);
    buf.writeUInt16LE(ino.xattrIcount, at + IC.xattrIcount);
    buf.writeUInt16LE(ino.mode, at + IC.mode);
    buf.writeUInt16LE(ino.nlink, at + IC.nlink);
    buf.writeUInt32LE(ino.size, at + IC.size);
    buf.writeUInt32LE(Number(BigInt.asUintN(32, ino.mtime)), at + IC.mtime);
    buf.writeUInt32LE(ino.u >>> 0, at + IC.u);
    buf.writeUInt32LE(ino.ino >>> 0, at + IC.ino);
    buf.writeUInt16LE(ino.uid, at + IC.uid);
    buf.writeUInt16LE(ino.gid, at + IC.gid);
  }
}

/**
 * Decode an inode core from `buf` at `at` (32 bytes for compact, 64 for extended: check the
 * format with isExtendedFormat first). Sizes beyond 2^53 come back as Infinity, for the caller to reject.
 */
export function decodeInodeCore(buf: Buffer, at: number): InodeCore {
  const format = buf.readUInt16LE(at);
  const extended = isExtendedFormat(format);
  const datalayout = (format >> I_DATALAYOUT_SHIFT) & I_DATALAYOUT_MASK;
  const formatExtra = format & ~(I_VERSION_EXTENDED | (I_DATALAYOUT_MASK << I_DATALAYOUT_SHIFT));
  if (extended) {
    const size = buf.readBigUInt64LE(at + IE.size);
    return {
      extended, datalayout, formatExtra,
      xattrIcount: buf.readUInt16LE(at + IE.xattrIcount),
      mode: buf.readUInt16LE(at + IE.mode),
      nlink: buf.readUInt32LE(at + IE.nlink),
      size: size > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(size),
      u: buf.readUInt32LE(at + IE.u),
      ino: buf.readUInt32LE(at + IE.ino),
      uid: buf.readUInt32LE(at + IE.uid),
      gid: buf.readUInt32LE(at + IE.gid),
      mtime: buf.readBigInt64LE(at + IE.mtime),
      mtimeNsec: buf.readUInt32LE(at + IE.mtimeNsec),
    };
  }
  return {
    extended, datalayout, formatExtra,
    xattrIcount: buf.readUInt16LE(at + IC.xattrIcount),
    mode: buf.readUInt16LE(at + IC.mode),
    nlink: buf.readUInt16LE(at + IC.nlink),
    size: buf.readUInt32LE(at + IC.size),
    u: buf.readUInt32LE(at + IC.u),
    ino: buf.readUInt32LE(at + IC.ino),
    uid: buf.readUInt16LE(at + IC.uid),
    gid: buf.readUInt16LE(at + IC.gid),
    mtime: BigInt(buf.readUInt32LE(at + IC.mtime)),
    mtimeNsec: 0,
  };
}

/** Linux new_encode_dev. */
export function encodeRdev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

/** Linux new_decode_dev. */
export function decodeRdev(rdev: number): { major: number; minor: number } {
  return { major: (rdev & 0xfff00) >>> 8, minor: ((rdev & 0xff) | ((rdev >>> 12) & 0xfff00)) >>> 0 };
}
