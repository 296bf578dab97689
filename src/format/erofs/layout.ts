/**
 * The erofs on-disk format (uncompressed subset) in one place: every struct offset and constant,
 * no logic — the counterpart of the kernel's erofs_fs.h. All integers are little-endian.
 * Reference: /work/shared/spec/erofs-format.md (section numbers below refer to it).
 */

// ---- Superblock (§2): 128 bytes at byte 1024 of device 0 ----

export const EROFS_MAGIC = 0xe0f5e1e2;
export const SUPER_OFFSET = 1024;
export const SUPER_SIZE = 128;

/** Field offsets inside the superblock. */
export const SB = {
  magic: 0, // u32
  checksum: 4, // u32, CRC32C (§12)
  featureCompat: 8, // u32
  blkszbits: 12, // u8
  sbExtslots: 13, // u8, superblock size = 128 + 16 * n
  rootNid: 14, // u16
  inos: 16, // u64
  buildTime: 24, // u64 seconds (newest: epoch)
  buildTimeNsec: 32, // u32
  blocks: 36, // u32, blocks of device 0
  metaBlkaddr: 40, // u32
  xattrBlkaddr: 44, // u32
  uuid: 48, // u8[16]
  volumeName: 64, // u8[16], must contain a NUL
  featureIncompat: 80, // u32
  u1: 84, // u16 available_compr_algs / lz4_max_distance
  extraDevices: 86, // u16
  devtSlotoff: 88, // u16, device table at devt_slotoff * 128
  dirblkbits: 90, // u8, must be 0
  xattrPrefixCount: 91, // u8 (newest)
  xattrPrefixStart: 92, // u32 (newest)
  packedNid: 96, // u64
  reserved2: 104, // u8[24]
} as const;

export const UUID_SIZE = 16;
export const VOLUME_NAME_SIZE = 16;
export const SB_EXTSLOT_SIZE = 16;

// ---- Feature bits (§3) ----

export const COMPAT_SB_CHKSUM = 0x1;
export const COMPAT_MTIME = 0x2;
export const COMPAT_XATTR_FILTER = 0x4;

export const INCOMPAT_ZERO_PADDING = 0x1;
export const INCOMPAT_COMPR_CFGS = 0x2;
export const INCOMPAT_CHUNKED_FILE = 0x4;
export const INCOMPAT_DEVICE_TABLE = 0x8;
export const INCOMPAT_ZTAILPACKING = 0x10;
export const INCOMPAT_FRAGMENTS = 0x20;
export const INCOMPAT_XATTR_PREFIXES = 0x40;
export const INCOMPAT_48BIT = 0x80;
export const INCOMPAT_METABOX = 0x100;
/** Bits Linux 6.1 knows; the compression ones only matter to compressed inodes, which readers reject per inode. */
export const INCOMPAT_LINUX_6_1 = 0x3f;

// ---- Blocks ----

export const BLKSZBITS = 12;
export const BLKSZ = 1 << BLKSZBITS;
export const MIN_BLKSZBITS = 9;
export const MAX_BLKSZBITS = 12; // PAGE_SHIFT on x86-64
/** "No block" in raw_blkaddr, block maps and chunk indexes: a hole. */
export const NULL_ADDR = 0xffffffff;

// ---- Inodes (§5) ----

export const ISLOT_BITS = 5;
export const ISLOT_SIZE = 1 << ISLOT_BITS;
export const INODE_COMPACT_SIZE = 32;
export const INODE_EXTENDED_SIZE = 64;

/** i_format: bit 0 version, bits 1-3 data layout, bit 4 NLINK_1 / DOT_OMITTED (newest). */
export const I_VERSION_EXTENDED = 0x1;
export const I_DATALAYOUT_SHIFT = 1;
export const I_DATALAYOUT_MASK = 0x7;
export const I_NLINK_1 = 0x10;
export const I_FORMAT_KNOWN_BITS = 0x1f;

export const DATALAYOUT_FLAT_PLAIN = 0;
export const DATALAYOUT_COMPRESSED_FULL = 1;
export const DATALAYOUT_FLAT_INLINE = 2;
export const DATALAYOUT_COMPRESSED_COMPACT = 3;
export const DATALAYOUT_CHUNK_BASED = 4;

/** Compact inode (32 bytes). */
export const IC = {
  format: 0, // u16
  xattrIcount: 2, // u16
  mode: 4, // u16
  nlink: 6, // u16
  size: 8, // u32
  mtime: 12, // u32 (6.1: reserved, 0; newest: seconds after epoch)
  u: 16, // u32 raw_blkaddr / rdev / chunk_info
  ino: 20, // u32
  uid: 24, // u16
  gid: 26, // u16
  reserved2: 28, // u32
} as const;

/** Extended inode (64 bytes). */
export const IE = {
  format: 0, // u16
  xattrIcount: 2, // u16
  mode: 4, // u16
  nb: 6, // u16 reserved
  size: 8, // u64
  u: 16, // u32
  ino: 20, // u32
  uid: 24, // u32
  gid: 28, // u32
  mtime: 32, // u64
  mtimeNsec: 40, // u32
  nlink: 44, // u32
  reserved2: 48, // u8[16]
} as const;

// st_mode type bits
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;
export const PERM_MASK = 0o7777;

// ---- Chunk-based files (§7.3) ----

/** i_u.chunk_info.format: low 5 bits = chunkbits - blkszbits; 0x20 = 8-byte indexes. */
export const CHUNK_FORMAT_BLKBITS_MASK = 0x1f;
export const CHUNK_FORMAT_INDEXES = 0x20;
export const CHUNK_FORMAT_48BIT = 0x40;
export const CHUNK_FORMAT_KNOWN_BITS = 0x3f;

export const CHUNK_INDEX_SIZE = 8;
export const CHUNK_INDEX = {
  advise: 0, // u16
  deviceId: 2, // u16
  blkaddr: 4, // u32
} as const;
export const BLOCK_MAP_ENTRY_SIZE = 4;

// ---- Device table (§8) ----

export const DEVICE_SLOT_SIZE = 128;
export const DEVICE_SLOT = {
  tag: 0, // u8[64]
  blocks: 64, // u32
  mappedBlkaddr: 68, // u32
  reserved: 72, // u8[56]
} as const;
export const DEVICE_TAG_SIZE = 64;
/** Where mkfs and our writer put the table: right after the superblock (byte 1152). */
export const DEFAULT_DEVT_SLOTOFF = (SUPER_OFFSET + SUPER_SIZE) / DEVICE_SLOT_SIZE;

// ---- Directories (§9) ----

export const DIRENT_SIZE = 12;
export const DIRENT = {
  nid: 0, // u64
  nameoff: 8, // u16
  fileType: 10, // u8
  reserved: 11, // u8
} as const;
export const NAME_LEN = 255;

export const FT_UNKNOWN = 0;
export const FT_REG_FILE = 1;
export const FT_DIR = 2;
export const FT_CHRDEV = 3;
export const FT_BLKDEV = 4;
export const FT_FIFO = 5;
export const FT_SOCK = 6;
export const FT_SYMLINK = 7;

// ---- Extended attributes (§11) ----

export const XATTR_HEADER_SIZE = 12;
export const XATTR_HEADER = {
  nameFilter: 0, // u32 (reserved in 6.1)
  sharedCount: 4, // u8
  reserved: 5, // u8[7]
} as const;
export const XATTR_ENTRY_SIZE = 4;
export const XATTR_ENTRY = {
  nameLen: 0, // u8
  nameIndex: 1, // u8
  valueSize: 2, // u16
} as const;
/** Shared xattr ids and entry alignment are in 4-byte units. */
export const XATTR_ALIGN = 4;
export const XATTR_LONG_PREFIX_BIT = 0x80;
export const XATTR_MAX_SHARED = 255;

export const XATTR_INDEX_USER = 1;
export const XATTR_INDEX_POSIX_ACL_ACCESS = 2;
export const XATTR_INDEX_POSIX_ACL_DEFAULT = 3;
export const XATTR_INDEX_TRUSTED = 4;
export const XATTR_INDEX_LUSTRE = 5;
export const XATTR_INDEX_SECURITY = 6;

/** Prefix per index, longest-match first where prefixes nest. Lustre is on disk but Linux never exposes it. */
export const XATTR_PREFIXES: readonly { index: number; prefix: string }[] = [
  { index: XATTR_INDEX_POSIX_ACL_ACCESS, prefix: 'system.posix_acl_access' },
  { index: XATTR_INDEX_POSIX_ACL_DEFAULT, prefix: 'system.posix_acl_default' },
  { index: XATTR_INDEX_USER, prefix: 'user.' },
  { index: XATTR_INDEX_TRUSTED, prefix: 'trusted.' },
  { index: XATTR_INDEX_SECURITY, prefix: 'security.' },
];

/** xattr body size for i_xattr_icount (0 = none). */
export function xattrIbodySize(icount: number): number {
  return icount === 0 ? 0 : XATTR_HEADER_SIZE + 4 * (icount - 1);
}
