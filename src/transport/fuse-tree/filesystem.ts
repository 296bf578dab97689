/**
 * The fuse-tree view of one image: the whole tree, read from the bootstrap by our own erofs reader,
 * file data through the cache backend (the same CachedBlob every transport reads, so what one path
 * fetched no other fetches again). Attributes are those the kernel's erofs shows for the same image:
 * st_ino is the nid, hard links share it, st_blocks is the size rounded up to blocks, times are the
 * inode's (nanoseconds kept), device numbers as encoded by the kernel.
 *
 * FUSE node ids: the root is 1, every other inode its nid + 2 (node ids are ours to choose, and
 * the kernel needs the root at 1). The image never changes, so nothing is tracked per lookup.
 *
 * A file stored in one piece of one blob is handed to the session's reader thread (fastReadSource at
 * the piece's offset in the blob's cache file, under the cache's presence view): frames already in
 * the cache are served without this thread.
 */
import { constants, readFileSync, statSync } from 'node:fs';
import { OndemandError } from '../../util/errors.js';
import { compiledThreadUrl } from '../../util/thread-url.js';
import { FUSE_ROOT_ID } from '../../fuse/layout.js';
import { ErofsReader, fromBuffer, fromFile, type DeviceReader, type ErofsInodeInfo } from '../../format/erofs/reader.js';
import type { NodeKind } from '../../format/erofs/model.js';
import type { CachedBlob } from '../../cache/types.js';
import type { DirEntry, FastReadSource, FuseAttr, FuseFilesystem, FuseStatfs, MetadataTree, OpenResult, ThreadTreeSpec } from '../../fuse/types.js';

const ENOENT = 2;
const ENOTDIR = 20;
const EINVAL = 22;
const EROFS = 30;
const ENODATA = 61;
const EROFS_NAME_LEN = 255;
const O_ACCMODE = 3;
/** Bootstraps up to this size are read into memory (a Debian minbase's is 2.9 MB). */
const IN_MEMORY_BOOTSTRAP_MAX = 256 << 20;

const TYPE_BITS: Record<NodeKind, number> = {
  file: 0o100000, dir: 0o040000, symlink: 0o120000, chardev: 0o020000, blockdev: 0o060000, fifo: 0o010000, socket: 0o140000,
};

/** The kernel's new_encode_dev: minor's low byte, major, then minor's high bits. */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export interface FuseTreeOptions {
  /** Local path of the uncompressed bootstrap (erofs meta image). */
  bootstrapPath: string;
  /** Data blobs in erofs device-table order (device i+1). */
  blobs: readonly CachedBlob[];
  /** For errors. */
  image?: string;
}

export interface FuseTreeStats {
  /** READs answered here (the reader thread's fast reads are in the session's counters). */
  fileReads: number;
  fileBytesRead: number;
  /** LOOKUPs answered by this instance (the reader thread answers most: FuseSessionStats.threadMetadata). */
  lookups: number;
  /** Files whose READs the reader thread may answer from a blob's cache file. */
  fastSources: number;
}

export class FuseTreeFilesystem implements FuseFilesystem, MetadataTree {
  readonly readdirPlus = true;
  private readonly reader: ErofsReader;
  private readonly closeSource: () => void;
  private readonly blobs: readonly CachedBlob[];
  private readonly image: string | undefined;
  private readonly devices: DeviceReader;
  private readonly bootstrapPath: string;
  private readonly counters: FuseTreeStats = { fileReads: 0, fileBytesRead: 0, lookups: 0, fastSources: 0 };
  /** Inodes handed to the reader thread: which blob holds each, from where. */
  private readonly fast = new Map<number, { blob: CachedBlob; base: number }>();

  constructor(options: FuseTreeOptions) {
    // Every LOOKUP and READDIR reads inodes and directory blocks: from memory, unless the bootstrap is huge.
    const size = statSync(options.bootstrapPath).size;
    const source = size <= IN_MEMORY_BOOTSTRAP_MAX ? { ...fromBuffer(readFileSync(options.bootstrapPath)), close: () => undefined } : fromFile(options.bootstrapPath);
    this.closeSource = () => source.close();
    this.bootstrapPath = options.bootstrapPath;
    this.image = options.image;
    try {
      this.reader = ErofsReader.open(source, options.image === undefined ? {} : { name: options.image });
    } catch (err) {
      source.close();
      throw err;
    }
    this.blobs = options.blobs;
    this.devices = {
      read: (device, offset, length) => {
        const blob = this.blobs[device - 1];
        if (!blob) return Promise.reject(this.error(`no blob for device ${device}`, EINVAL));
        return blob.read(offset, length);
      },
    };
  }

  /** The reader thread answers metadata from a tree of its own over the same bootstrap (thread-tree.ts). */
  threadTree(): ThreadTreeSpec {
    return { module: compiledThreadUrl(import.meta.url, 'thread-tree.js', 'EFUSE').href, args: { bootstrapPath: this.bootstrapPath, image: this.image } };
  }

  stats(): FuseTreeStats {
    return { ...this.counters };
  }

  private nid(ino: number): number {
    return ino === FUSE_ROOT_ID ? this.reader.rootNid : ino - 2;
  }

  private nodeId(nid: number): number {
    return nid === this.reader.rootNid ? FUSE_ROOT_ID : nid + 2;
  }

  private error(message: string, errno: number, extra: Record<string, unknown> = {}): OndemandError {
    return new OndemandError(errno === ENOENT ? 'ENOTFOUND' : 'EFUSE', message, { image: this.image, ...extra }, { errno });
  }

  private info(ino: number): ErofsInodeInfo {
    return this.reader.inode(this.nid(ino));
  }

  private attrOf(i: ErofsInodeInfo): FuseAttr {
    const bs = this.reader.blockSize;
    return {
      ino: this.nodeId(i.nid), stIno: i.nid, size: i.size, mode: TYPE_BITS[i.kind] | i.perm, nlink: i.nlink, uid: i.uid, gid: i.gid,
      rdev: i.kind === 'chardev' || i.kind === 'blockdev' ? encodeDev(i.rdevMajor, i.rdevMinor) : 0,
      mtime: Number(BigInt.asIntN(64, i.mtime)), mtimeNsec: i.mtimeNsec, blksize: bs, blocks: (Math.ceil(i.size / bs) * bs) / 512,
    };
  }

  lookup(parent: number, name: Buffer): FuseAttr {
    this.counters.lookups++;
    const attr = this.find(parent, name);
    if (attr === undefined) throw this.error(`no entry ${name.toString('utf8')}`, ENOENT, { nid: this.nid(parent) });
    return attr;
  }

  find(parent: number, name: Buffer): FuseAttr | undefined {
    const dir = this.nid(parent);
    if (this.reader.inode(dir).kind !== 'dir') throw this.error('not a directory', ENOTDIR, { nid: dir });
    const nid = name.length > EROFS_NAME_LEN ? undefined : this.reader.lookup(dir, name);
    return nid === undefined ? undefined : this.attrOf(this.reader.inode(nid));
  }

  getattr(ino: number): FuseAttr {
    return this.attrOf(this.info(ino));
  }

  open(ino: number, flags: number): OpenResult {
    const i = this.info(ino);
    if (i.kind === 'dir') throw this.error('is a directory', 21, { nid: i.nid });
    if ((flags & O_ACCMODE) !== constants.O_RDONLY || (flags & constants.O_TRUNC) !== 0) throw this.error('read-only image', EROFS, { nid: i.nid });
    // The image is immutable: whatever the kernel keeps in its page cache stays right.
    return { keepCache: true };
  }

  async read(ino: number, _fh: bigint, offset: number, length: number): Promise<Buffer> {
    const nid = this.nid(ino);
    const data = await this.reader.readFile(nid, offset, length, this.devices);
    this.counters.fileReads++;
    this.counters.fileBytesRead += data.length;
    return data;
  }

  /** A regular file stored in one piece of one blob: the reader thread may serve it from the blob's cache file. */
  fastReadSource(ino: number): FastReadSource | undefined {
    const i = this.info(ino);
    if (i.kind !== 'file' || i.size === 0) return undefined;
    const extents = this.reader.fileExtents(i.nid);
    const only = extents[0];
    if (extents.length !== 1 || only === undefined || only.hole || only.device === 0 || only.length !== i.size) return undefined;
    const blob = this.blobs[only.device - 1];
    const view = blob?.presenceView?.();
    if (!blob || !view || only.deviceOffset + i.size > view.size) return undefined;
    this.counters.fastSources++;
    this.fast.set(ino, { blob, base: only.deviceOffset });
    return {
      path: view.dataPath, size: i.size, base: only.deviceOffset,
      presence: { frameSize: view.frameSize, bits: view.bits, written: view.written, state: view.state, hits: view.hits },
    };
  }

  /** The reader thread served a frame of a file in a blob: that blob's read-ahead goes on (nothing to do once it is complete). */
  servedOnThread(ino: number, offset: number, length: number): void {
    const f = this.fast.get(ino);
    if (!f || f.blob.isComplete()) return;
    f.blob.readElsewhere?.(f.base + offset, length);
  }

  readdir(ino: number): DirEntry[] {
    const dir = this.info(ino);
    if (dir.kind !== 'dir') throw this.error('not a directory', ENOTDIR, { nid: dir.nid });
    const parent = this.reader.lookup(dir.nid, Buffer.from('..')) ?? dir.nid;
    const out: DirEntry[] = [
      { name: '.', ino: dir.nid, mode: TYPE_BITS.dir },
      { name: '..', ino: parent, mode: TYPE_BITS.dir },
    ];
    for (const e of this.reader.readdir(dir.nid)) {
      const attr = this.attrOf(this.reader.inode(e.nid));
      out.push({ name: e.name, ino: e.nid, mode: attr.mode, attr });
    }
    return out;
  }

  readlink(ino: number): Buffer {
    const i = this.info(ino);
    if (i.kind !== 'symlink') throw this.error('not a symlink', EINVAL, { nid: i.nid });
    return this.reader.readlink(i.nid);
  }

  getxattr(ino: number, name: string): Buffer {
    const value = this.xattr(ino, name);
    if (value === undefined) throw this.error(`no xattr ${name}`, ENODATA);
    return value;
  }

  xattr(ino: number, name: string): Buffer | undefined {
    return this.reader.xattrs(this.nid(ino)).find((x) => x.name === name)?.value;
  }

  listxattr(ino: number): string[] {
    return this.reader.xattrs(this.nid(ino)).map((x) => x.name);
  }

  statfs(): FuseStatfs {
    const sb = this.reader.superblock;
    const blocks = sb.blocks + sb.devices.reduce((n, d) => n + d.blocks, 0);
    return { blocks, bfree: 0, bavail: 0, files: Number(sb.inos), ffree: 0, bsize: sb.blockSize, namelen: EROFS_NAME_LEN, frsize: sb.blockSize };
  }

  close(): void {
    this.closeSource();
  }
}
