/**
 * The seam between the FUSE session (protocol, kernel) and a filesystem (what the files are).
 * fuse-blobs (a flat directory of blob files) and fuse-tree (a whole image tree) both implement
 * FuseFilesystem; FuseSession does everything else. Inode numbers are FUSE node ids (root = 1).
 * Failures: throw an OndemandError (its `errno` goes to the kernel); anything else becomes EIO.
 */
import type { FuseAttr, FuseStatfs } from './layout.js';

export type { FuseAttr, FuseStatfs };

/** Per-request context: who asked, and a signal aborted when the kernel interrupts the request. */
export interface RequestContext {
  uid: number;
  gid: number;
  pid: number;
  signal: AbortSignal;
}

export interface DirEntry {
  /** The name's bytes (a string is taken as UTF-8). */
  name: string | Buffer;
  /** d_ino: the st_ino programs see. */
  ino: number;
  /** st_mode (only the type bits are used). */
  mode: number;
  /**
   * The entry's node and attributes, for READDIRPLUS (counts as a LOOKUP of it); absent for `.` and
   * `..`, and when the filesystem does not offer READDIRPLUS.
   */
  attr?: FuseAttr;
}

export interface OpenResult {
  /** File handle echoed back in READ/RELEASE; 0 when the filesystem does not need one. */
  fh?: bigint;
  /** Keep the page cache across opens (immutable files). */
  keepCache?: boolean;
  /** Bypass the page cache: every read() becomes a READ request. */
  directIo?: boolean;
  /**
   * Ask the session to let the kernel read this local file directly (FUSE passthrough). The file
   * must hold the complete, final contents. Ignored (normal READs) when the connection has no
   * passthrough or the inode is already open without it (the kernel forbids mixing the two).
   */
  passthroughPath?: string;
}

export interface FuseFilesystem {
  /** `name` is the entry's bytes (file names need not be UTF-8). */
  lookup(parent: number, name: Buffer, ctx: RequestContext): Promise<FuseAttr> | FuseAttr;
  getattr(ino: number, ctx: RequestContext): Promise<FuseAttr> | FuseAttr;
  open(ino: number, flags: number, ctx: RequestContext): Promise<OpenResult> | OpenResult;
  read(ino: number, fh: bigint, offset: number, length: number, ctx: RequestContext): Promise<Buffer> | Buffer;
  release?(ino: number, fh: bigint): Promise<void> | void;
  /** Every entry of a directory (the session pages them into READDIR replies). */
  readdir(ino: number, ctx: RequestContext): Promise<DirEntry[]> | DirEntry[];
  /**
   * True when readdir gives every entry but `.` and `..` its `attr`: the session then offers the kernel
   * READDIRPLUS (a listing brings the attributes along, so `ls -l` needs no LOOKUP per entry).
   */
  readonly readdirPlus?: boolean;
  readlink?(ino: number, ctx: RequestContext): Promise<string | Buffer> | string | Buffer;
  statfs?(ino: number): FuseStatfs;
  /** Without these the kernel is told ENOSYS once and caches "no xattrs". */
  getxattr?(ino: number, name: string, ctx: RequestContext): Promise<Buffer> | Buffer;
  listxattr?(ino: number, ctx: RequestContext): Promise<string[]> | string[];
  /** The kernel dropped `nlookup` references to an inode (no reply). */
  forget?(ino: number, nlookup: number): void;
  /**
   * Lets the session's reader thread answer READs of `ino` itself from a local file (see
   * FastReadSource) instead of calling read(). Asked once per inode per session: the inode's bytes
   * must stay those of the source for the session's life. Undefined = always call read().
   */
  fastReadSource?(ino: number): FastReadSource | undefined;
  /**
   * The reader thread answered a READ of `ino` from its FastReadSource's presence (the first one in
   * each frame: a sequential reader's progress), so the owner can read ahead of it. No reply.
   */
  servedOnThread?(ino: number, offset: number, length: number): void;
  /**
   * Lets the reader thread answer the metadata requests itself (LOOKUP, GETATTR, READDIR(PLUS),
   * READLINK, xattrs, STATFS, ACCESS, directory handles) from a MetadataTree the module builds on the
   * thread: no hop to the main thread per request. Only for a filesystem whose tree never changes.
   */
  threadTree?(): ThreadTreeSpec | undefined;
}

/**
 * How a thread builds its MetadataTree: `module` (a file URL of compiled code) exports
 * `createMetadataTree(args)`. `args` must be structured-cloneable.
 */
export interface ThreadTreeSpec {
  module: string;
  args: Record<string, string | number | boolean | undefined>;
}

/**
 * The synchronous, immutable view of a tree a reader thread answers metadata from. Failures as for
 * FuseFilesystem: an OndemandError with its errno; the misses programs cause all the time (a name not
 * in a directory, an xattr a file lacks: `ls -l` asks every file for two) are undefined instead, as
 * throwing costs more than the rest of the request.
 */
export interface MetadataTree {
  /** undefined: no such name (ENOENT). */
  find(parent: number, name: Buffer): FuseAttr | undefined;
  getattr(ino: number): FuseAttr;
  readdir(ino: number): DirEntry[];
  readlink(ino: number): Buffer;
  /** undefined: no such xattr (ENODATA). */
  xattr(ino: number, name: string): Buffer | undefined;
  listxattr(ino: number): string[];
  statfs(): FuseStatfs;
  close(): void;
}

/**
 * A local file holding an inode's bytes at the same offsets, readable from another thread. Everything
 * here must be structured-cloneable; the typed arrays live on SharedArrayBuffers.
 */
export interface FastReadSource {
  path: string;
  /** The inode's size: READs are clamped to it. */
  size: number;
  /** Where the inode's byte 0 is in `path` (default 0); presence frames count from the file's start. */
  base?: number;
  /**
   * Without it the whole file is valid. With it only frames whose bit is set (in `bits` or `written`) are, and only while the
   * epoch is even and unchanged across the pread (the cache's presence-view protocol); anything else
   * goes to read().
   */
  presence?: {
    frameSize: number;
    /** Frame i is bit (i & 7) of byte i >> 3. */
    bits: Uint8Array;
    /** Frames whose verified bytes are written, not yet durable (same layout). */
    written: Uint8Array;
    /** [0]: the epoch. */
    state: Int32Array;
    /** [0]: incremented for every READ served through this presence. */
    hits: BigInt64Array;
  };
  /** [0] READs, [1] bytes served from this source by the reader thread (Atomics.add). */
  served?: BigInt64Array;
}

/** What INIT settled; a session re-created on an existing connection reuses it instead of INIT. */
export interface FuseConnectionParams {
  /** Protocol minor version in use. */
  minor: number;
  /** Whether FUSE_PASSTHROUGH was negotiated (OPEN may then return backing ids). */
  passthrough: boolean;
  maxWrite: number;
  maxPages: number;
  maxReadahead: number;
}

export interface FuseSessionStats {
  requests: number;
  reads: number;
  bytesRead: number;
  opens: number;
  passthroughOpens: number;
  interrupts: number;
  errors: number;
  /** Requests answered ENOSYS because the opcode is not implemented. */
  unsupported: number;
  inFlight: number;
  /** READs the reader thread answered itself from a FastReadSource (included in `reads`). */
  fastReads?: number;
  /** Metadata requests the reader thread answered itself from its tree (included in `requests`). */
  threadMetadata?: number;
}
