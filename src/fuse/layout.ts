/**
 * The FUSE kernel protocol (include/uapi/linux/fuse.h, protocol 7.40+ for passthrough): every opcode,
 * flag, struct size and field offset lives here once. No logic beyond encoding/decoding fixed structs.
 * All integers are little-endian (x86-64 / arm64 hosts).
 */

export const FUSE_KERNEL_VERSION = 7;
/** The minor version we speak: 7.40 added passthrough (backing ids, max_stack_depth). */
export const FUSE_KERNEL_MINOR_VERSION = 40;
export const FUSE_ROOT_ID = 1;

export const Opcode = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  LSEEK: 46,
  STATX: 52,
} as const;

/**
 * Notifications the server writes unasked (fuse_out_header.unique = 0, error = code).
 * RESEND (6.9+, 7.40): the kernel requeues every request read but not yet answered — for a new server
 * taking over a connection whose previous server died mid-request.
 */
export const NotifyCode = {
  RESEND: 7,
} as const;

/** INIT flags (low word `flags`, high word `flags2` when FUSE_INIT_EXT is set). */
export const InitFlag = {
  ASYNC_READ: 1 << 0,
  BIG_WRITES: 1 << 5,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  ASYNC_DIO: 1 << 15,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  /** The kernel takes ENOSYS for OPENDIR as "no handles needed" and sends no more OPENDIR or RELEASEDIR (5.1+). */
  NO_OPENDIR_SUPPORT: 1 << 24,
  INIT_EXT: 1 << 30,
} as const;

/** Bits of `flags2` (the high 32 bits of the 64-bit INIT flags). */
export const InitFlag2 = {
  /** FUSE_PASSTHROUGH = 1ULL << 37. */
  PASSTHROUGH: 1 << 5,
} as const;

/** fuse_open_out.open_flags */
export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_CACHE_DIR = 1 << 3;
export const FOPEN_PASSTHROUGH = 1 << 7;

/** ioctls on /dev/fuse: _IOR/_IOW(229, nr, type). */
export const FUSE_DEV_IOC_CLONE = 0x8004e500;
/** _IOW(229, 1, struct fuse_backing_map {int32 fd; u32 flags; u64 padding}) */
export const FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501;
/** _IOW(229, 2, uint32_t backing_id) */
export const FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502;
export const FUSE_BACKING_MAP_SIZE = 16;

// ---- struct sizes -------------------------------------------------------------------------------

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
export const ATTR_OUT_SIZE = 16 + ATTR_SIZE;
export const OPEN_OUT_SIZE = 16;
export const INIT_OUT_SIZE = 64;
export const KSTATFS_SIZE = 80;
export const GETXATTR_OUT_SIZE = 8;
export const DIRENT_HEADER_SIZE = 24;
/** The unit of max_pages (x86-64 and arm64 hosts with 4 KiB pages). */
export const PAGE_SIZE = 4096;
/** The kernel refuses reads of /dev/fuse into buffers smaller than this or than max_write + headers. */
export const FUSE_MIN_READ_BUFFER = 8192;
/** fuse_in_header + fuse_write_in: what the read buffer needs on top of max_write. */
export const WRITE_REQUEST_OVERHEAD = IN_HEADER_SIZE + 40;

// ---- fuse_in_header -----------------------------------------------------------------------------

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

/** Field offsets of fuse_in_header. */
export const InHeaderOffset = { LEN: 0, OPCODE: 4, UNIQUE: 8, NODEID: 16, UID: 24, GID: 28, PID: 32 } as const;

export function decodeInHeader(buf: Buffer): InHeader {
  return {
    len: buf.readUInt32LE(InHeaderOffset.LEN),
    opcode: buf.readUInt32LE(InHeaderOffset.OPCODE),
    unique: buf.readBigUInt64LE(InHeaderOffset.UNIQUE),
    nodeid: Number(buf.readBigUInt64LE(InHeaderOffset.NODEID)),
    uid: buf.readUInt32LE(InHeaderOffset.UID),
    gid: buf.readUInt32LE(InHeaderOffset.GID),
    pid: buf.readUInt32LE(InHeaderOffset.PID),
  };
}

/** fuse_out_header into b[0, OUT_HEADER_SIZE) (the reader thread reuses one reply buffer). */
export function writeOutHeader(b: Buffer, len: number, error: number, unique: bigint): void {
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(error, 4);
  b.writeBigUInt64LE(unique, 8);
}

export function encodeOutHeader(len: number, error: number, unique: bigint): Buffer {
  const b = Buffer.allocUnsafe(OUT_HEADER_SIZE);
  writeOutHeader(b, len, error, unique);
  return b;
}

// ---- request bodies (offsets relative to the end of fuse_in_header) ----------------------------

export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
  /** Zero unless the kernel set FUSE_INIT_EXT. */
  flags2: number;
}

export function decodeInitIn(body: Buffer): InitIn {
  const flags = body.readUInt32LE(12);
  return {
    major: body.readUInt32LE(0),
    minor: body.readUInt32LE(4),
    maxReadahead: body.readUInt32LE(8),
    flags,
    flags2: (flags & InitFlag.INIT_EXT) !== 0 && body.length >= 20 ? body.readUInt32LE(16) : 0,
  };
}

export interface InitOut {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  timeGran: number;
  maxPages: number;
  flags2: number;
  maxStackDepth: number;
}

export function encodeInitOut(o: InitOut): Buffer {
  const b = Buffer.alloc(INIT_OUT_SIZE);
  b.writeUInt32LE(o.major, 0);
  b.writeUInt32LE(o.minor, 4);
  b.writeUInt32LE(o.maxReadahead, 8);
  b.writeUInt32LE(o.flags >>> 0, 12);
  b.writeUInt16LE(o.maxBackground, 16);
  b.writeUInt16LE(o.congestionThreshold, 18);
  b.writeUInt32LE(o.maxWrite, 20);
  b.writeUInt32LE(o.timeGran, 24);
  b.writeUInt16LE(o.maxPages, 28);
  b.writeUInt16LE(0, 30); // map_alignment
  b.writeUInt32LE(o.flags2 >>> 0, 32);
  b.writeUInt32LE(o.maxStackDepth, 36);
  return b;
}

/** fuse_read_in (READ, READDIR, READDIRPLUS). */
export interface ReadIn {
  fh: bigint;
  offset: number;
  size: number;
}

/** Field offsets of fuse_read_in, relative to the body. */
export const ReadInOffset = { FH: 0, OFFSET: 8, SIZE: 16 } as const;
/** FUSE_COMPAT_READ_IN_SIZE (fh, offset, size, padding): every READ body holds at least this. */
export const READ_IN_COMPAT_SIZE = 24;

export function decodeReadIn(body: Buffer): ReadIn {
  return {
    fh: body.readBigUInt64LE(ReadInOffset.FH),
    offset: Number(body.readBigUInt64LE(ReadInOffset.OFFSET)),
    size: body.readUInt32LE(ReadInOffset.SIZE),
  };
}

/** fuse_open_in.flags (OPEN, OPENDIR). */
export function decodeOpenFlags(body: Buffer): number {
  return body.readUInt32LE(0);
}

/** fuse_release_in.fh (RELEASE, RELEASEDIR) and fuse_flush_in.fh. */
export function decodeFh(body: Buffer): bigint {
  return body.readBigUInt64LE(0);
}

/** fuse_getattr_in: flags, dummy, fh. */
export function decodeGetattrIn(body: Buffer): { flags: number; fh: bigint } {
  return body.length >= 16 ? { flags: body.readUInt32LE(0), fh: body.readBigUInt64LE(8) } : { flags: 0, fh: 0n };
}

/** fuse_getxattr_in: size, padding, then the NUL-terminated name (GETXATTR only). */
export function decodeGetxattrIn(body: Buffer): { size: number; name: string } {
  return { size: body.readUInt32LE(0), name: body.length > 8 ? cString(body.subarray(8)) : '' };
}

/** fuse_access_in.mask */
export function decodeAccessMask(body: Buffer): number {
  return body.readUInt32LE(0);
}

/** fuse_interrupt_in.unique */
export function decodeInterruptIn(body: Buffer): bigint {
  return body.readBigUInt64LE(0);
}

/** fuse_forget_in.nlookup */
export function decodeForgetIn(body: Buffer): number {
  return Number(body.readBigUInt64LE(0));
}

/** fuse_batch_forget_in {count, dummy} followed by fuse_forget_one {nodeid, nlookup}[count]. */
export function decodeBatchForgetIn(body: Buffer): { nodeid: number; nlookup: number }[] {
  const count = body.readUInt32LE(0);
  const out: { nodeid: number; nlookup: number }[] = [];
  for (let i = 0; i < count && 8 + i * 16 + 16 <= body.length; i++) {
    const at = 8 + i * 16;
    out.push({ nodeid: Number(body.readBigUInt64LE(at)), nlookup: Number(body.readBigUInt64LE(at + 8)) });
  }
  return out;
}

/** A NUL-terminated name (LOOKUP, GETXATTR). */
export function cString(body: Buffer): string {
  return cBytes(body).toString('utf8');
}

/** A NUL-terminated name as its bytes (file names need not be UTF-8). */
export function cBytes(body: Buffer): Buffer {
  const end = body.indexOf(0);
  return body.subarray(0, end < 0 ? body.length : end);
}

// ---- reply bodies -------------------------------------------------------------------------------

/** What the kernel needs to know about an inode. Times are seconds since the epoch (float). */
export interface FuseAttr {
  /** The FUSE node id (and st_ino unless `stIno` is given). */
  ino: number;
  size: number;
  /** Full st_mode including the file type bits (S_IFREG | 0o644, ...). */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  /** Device number as the kernel encodes it (new_encode_dev). */
  rdev?: number;
  /** With `mtimeNsec`: whole seconds, and the nanoseconds are exact (a float loses them). */
  mtime?: number;
  mtimeNsec?: number;
  blksize?: number;
  /** st_ino programs see, when it is not the node id (node ids are ours to choose; root is 1). */
  stIno?: number;
  /** st_blocks (512-byte units); default: the size rounded up. */
  blocks?: number;
}

const TWO_32 = 2 ** 32;

/**
 * A 64-bit field from a safe integer, in two 32-bit halves (BigInt conversions made these records cost
 * a microsecond each; a READDIRPLUS page holds dozens). Negative values in two's complement.
 */
function writeU64(b: Buffer, at: number, n: number): void {
  const high = Math.floor(n / TWO_32);
  b.writeUInt32LE(n - high * TWO_32, at);
  b.writeInt32LE(high, at + 4);
}

function writeAttr(b: Buffer, at: number, a: FuseAttr): void {
  const sec = Math.floor(a.mtime ?? 0);
  const nsec = a.mtimeNsec ?? Math.floor(((a.mtime ?? 0) - sec) * 1e9);
  writeU64(b, at, a.stIno ?? a.ino);
  writeU64(b, at + 8, a.size);
  writeU64(b, at + 16, a.blocks ?? Math.ceil(a.size / 512));
  writeU64(b, at + 24, sec); // atime, mtime, ctime (before 1970: negative)
  writeU64(b, at + 32, sec);
  writeU64(b, at + 40, sec);
  b.writeUInt32LE(nsec, at + 48);
  b.writeUInt32LE(nsec, at + 52);
  b.writeUInt32LE(nsec, at + 56);
  b.writeUInt32LE(a.mode >>> 0, at + 60);
  b.writeUInt32LE(a.nlink, at + 64);
  b.writeUInt32LE(a.uid, at + 68);
  b.writeUInt32LE(a.gid, at + 72);
  b.writeUInt32LE(a.rdev ?? 0, at + 76);
  b.writeUInt32LE(a.blksize ?? 4096, at + 80);
  b.writeUInt32LE(0, at + 84); // flags
}

/** A timeout in seconds as fuse's (u64 seconds, u32 nanoseconds) pair, written at secAt and nsecAt. */
function writeTimeout(b: Buffer, secAt: number, nsecAt: number, seconds: number): void {
  const whole = Math.floor(seconds);
  writeU64(b, secAt, whole);
  b.writeUInt32LE(Math.floor((seconds - whole) * 1e9), nsecAt);
}

/** Writes one fuse_entry_out at `at` (ENTRY_OUT_SIZE bytes). */
export function writeEntryOut(b: Buffer, at: number, nodeid: number, generation: number, entryTimeout: number, attrTimeout: number, attr: FuseAttr): void {
  writeU64(b, at, nodeid);
  writeU64(b, at + 8, generation);
  writeTimeout(b, at + 16, at + 32, entryTimeout);
  writeTimeout(b, at + 24, at + 36, attrTimeout);
  writeAttr(b, at + 40, attr);
}

export function encodeEntryOut(nodeid: number, generation: number, entryTimeout: number, attrTimeout: number, attr: FuseAttr): Buffer {
  const b = Buffer.allocUnsafe(ENTRY_OUT_SIZE);
  writeEntryOut(b, 0, nodeid, generation, entryTimeout, attrTimeout, attr);
  return b;
}

export function encodeAttrOut(attrTimeout: number, attr: FuseAttr): Buffer {
  const b = Buffer.allocUnsafe(ATTR_OUT_SIZE);
  writeTimeout(b, 0, 8, attrTimeout);
  b.writeUInt32LE(0, 12); // dummy
  writeAttr(b, 16, attr);
  return b;
}

export function encodeOpenOut(fh: bigint, openFlags: number, backingId: number): Buffer {
  const b = Buffer.alloc(OPEN_OUT_SIZE);
  b.writeBigUInt64LE(fh, 0);
  b.writeUInt32LE(openFlags >>> 0, 8);
  b.writeInt32LE(backingId, 12);
  return b;
}

export interface FuseStatfs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

export function encodeStatfsOut(s: FuseStatfs): Buffer {
  const b = Buffer.alloc(KSTATFS_SIZE);
  b.writeBigUInt64LE(BigInt(s.blocks), 0);
  b.writeBigUInt64LE(BigInt(s.bfree), 8);
  b.writeBigUInt64LE(BigInt(s.bavail), 16);
  b.writeBigUInt64LE(BigInt(s.files), 24);
  b.writeBigUInt64LE(BigInt(s.ffree), 32);
  b.writeUInt32LE(s.bsize, 40);
  b.writeUInt32LE(s.namelen, 44);
  b.writeUInt32LE(s.frsize, 48);
  return b;
}

export function encodeGetxattrOut(size: number): Buffer {
  const b = Buffer.alloc(GETXATTR_OUT_SIZE);
  b.writeUInt32LE(size, 0);
  return b;
}

/** Size of one fuse_dirent record (header + name, padded to 8 bytes). */
export function direntSize(nameBytes: number): number {
  return (DIRENT_HEADER_SIZE + nameBytes + 7) & ~7;
}

/** Writes one fuse_dirent {ino, off, namelen, type, name} at `at`; returns the record size. */
export function writeDirent(b: Buffer, at: number, ino: number, nextOff: number, type: number, name: Buffer): number {
  const size = direntSize(name.length);
  writeU64(b, at, ino);
  writeU64(b, at + 8, nextOff);
  b.writeUInt32LE(name.length, at + 16);
  b.writeUInt32LE(type, at + 20);
  name.copy(b, at + DIRENT_HEADER_SIZE);
  b.fill(0, at + DIRENT_HEADER_SIZE + name.length, at + size);
  return size;
}

/** Size of one fuse_direntplus record (entry_out, then the dirent, padded to 8 bytes). */
export function direntPlusSize(nameBytes: number): number {
  return ENTRY_OUT_SIZE + direntSize(nameBytes);
}

/** File type bits of st_mode, and the dirent type (mode >> 12) the kernel expects. */
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export function direntType(mode: number): number {
  return (mode & S_IFMT) >>> 12;
}
