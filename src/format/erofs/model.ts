/**
 * The tree the erofs writer takes and the reader gives back: a filesystem independent of any on-disk
 * layout. Builders (`ondemand build`, `ondemand convert`) make one; the writer lays it out.
 *
 * Names are raw bytes (Buffers): erofs names need not be UTF-8. Hard links are the same ErofsNode
 * object listed in several directories (identity, not equality); the writer derives nlink.
 */
export type NodeKind = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

/** A full xattr name with its namespace prefix, e.g. `user.foo`, `security.capability`, `trusted.overlay.opaque`. */
export interface Xattr {
  name: string;
  value: Buffer;
}

/** Where one chunk of a regular file lives: blob device (1..N; 0 = the bootstrap) and 4 KiB block address. */
export interface ChunkLocation {
  device: number;
  blkaddr: number;
}

/**
 * A regular file's data:
 * - `inline`: the bytes are stored in the bootstrap itself (small files);
 * - `chunks`: chunk-based, `chunkBits` = log2(chunk size) (>= 12); `chunks[i]` covers
 *   [i << chunkBits, (i+1) << chunkBits) of the file; null is a hole (reads as zeros).
 */
export type FileData =
  | { kind: 'inline'; bytes: Buffer }
  | { kind: 'chunks'; chunkBits: number; chunks: (ChunkLocation | null)[] };

export interface ErofsNodeBase {
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777); the type comes from `kind`. */
  perm: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch (may be negative or beyond 2038) and nanoseconds. */
  mtime: bigint;
  mtimeNsec: number;
  xattrs: Xattr[];
}

export interface FileNode extends ErofsNodeBase {
  kind: 'file';
  size: number;
  data: FileData;
}

export interface DirEntry {
  name: Buffer;
  node: ErofsNode;
}

export interface DirNode extends ErofsNodeBase {
  kind: 'dir';
  /** Without `.` and `..`; any order (the writer sorts bytewise). */
  entries: DirEntry[];
}

export interface SymlinkNode extends ErofsNodeBase {
  kind: 'symlink';
  target: Buffer;
}

export interface DeviceNode extends ErofsNodeBase {
  kind: 'chardev' | 'blockdev';
  rdevMajor: number;
  rdevMinor: number;
}

export interface SpecialNode extends ErofsNodeBase {
  kind: 'fifo' | 'socket';
}

export type ErofsNode = FileNode | DirNode | SymlinkNode | DeviceNode | SpecialNode;

/** One extra device (a blob) in device-table order: device id = index + 1. */
export interface DeviceSlot {
  /** The blob's identity: 64 hex characters (sha256 of the uncompressed view). */
  tag: string;
  /** Blob size in 4 KiB blocks. */
  blocks: number;
}

export interface ErofsImageSpec {
  root: DirNode;
  devices: DeviceSlot[];
  /** Superblock build time (compact inodes' time). */
  buildTime: bigint;
  buildTimeNsec: number;
  /** 16 bytes; zeros when absent. */
  uuid?: Buffer;
  /** At most 15 bytes. */
  volumeName?: string;
}
