/**
 * ErofsReader: a synchronous reader of uncompressed erofs images (our writer's, mkfs.erofs 1.5's
 * plain / --chunksize / --blobdev images, nydus-style bootstraps) over device 0 (the bootstrap).
 *
 * Every malformed input ends in a FormatError: reads are bounded by the image size, loops by the
 * bytes they consume, directory walks by a visited set. File data on blob devices is read through
 * the caller's DeviceReader; device-0 data comes from the reader's own source.
 *
 * readdir, walk and toModel never return `.` and `..` (resolve and lookup still understand them).
 */
import { FormatError, type ErrorContext } from '../../util/errors.js';
import { kindOfFileType } from './dirent.js';
import type { DirNode, ErofsImageSpec, ErofsNode, FileData, NodeKind, Xattr } from './model.js';
import { lookupInBlocks, parseDirBlock, type RawDirEntry } from './read-dir.js';
import { publicInfo, readInodeRecord, type ErofsInodeInfo, type InodeRecord } from './read-inode.js';
import { mapExtents, readChunkTable, type FileExtent, type MapContext } from './read-map.js';
import { readSuperblock, type ErofsSuperblock } from './read-super.js';
import { readXattrs } from './read-xattr.js';
import type { ErofsSource } from './source.js';

export type { ErofsInodeInfo, ErofsLayout } from './read-inode.js';
export type { FileExtent } from './read-map.js';
export type { DeviceSlotInfo, ErofsSuperblock } from './read-super.js';
export { fromBuffer, fromFile, type ErofsSource } from './source.js';

/** Reads blob devices (1..N) for readFile. */
export interface DeviceReader {
  read(device: number, offset: number, length: number): Promise<Buffer>;
}

export interface ErofsDirEntry {
  name: Buffer;
  nid: number;
  kind: NodeKind;
}

export interface WalkEntry {
  /** '/'-joined path from the root ('/' for the root), names decoded as UTF-8 (lossy for other bytes). */
  path: string;
  /** The exact path bytes. */
  pathBytes: Buffer;
  nid: number;
  kind: NodeKind;
}

export interface OpenOptions {
  /** Names the image in error messages. */
  name?: string;
}

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');
const MAX_SYMLINK = 4095;
const INODE_CACHE_MAX = 8192;
const DIR_BLOCK_CACHE_MAX = 4096;
/** Directory blocks per nid in the parsed-block cache key (a directory of more is not cached past it: keys would collide). */
const DIR_BLOCK_KEY_SPAN = 2 ** 20;

export class ErofsReader {
  readonly superblock: ErofsSuperblock;
  readonly rootNid: number;
  private readonly ctx: ErrorContext;
  private readonly inodes = new Map<number, InodeRecord>();
  private readonly dirBlocksParsed = new Map<number, RawDirEntry[]>();
  private readonly map: MapContext;

  private constructor(private readonly source: ErofsSource, options: OpenOptions) {
    this.ctx = options.name === undefined ? {} : { image: options.name };
    this.superblock = readSuperblock(source, this.ctx);
    this.rootNid = this.superblock.rootNid;
    this.map = { sb: this.superblock, imageSize: source.size, read: (o, l) => this.bytes(o, l), ctx: this.ctx };
    const root = this.record(this.rootNid);
    if (root.kind !== 'dir') throw new FormatError(`erofs: root inode ${this.rootNid} is not a directory`, this.ctx);
  }

  /** Open an image: checks the superblock (magic, checksum, features, block size) and the root inode. */
  static open(source: ErofsSource, options: OpenOptions = {}): ErofsReader {
    return new ErofsReader(source, options);
  }

  get blockSize(): number {
    return this.superblock.blockSize;
  }

  inode(nid: number): ErofsInodeInfo {
    return publicInfo(this.record(nid));
  }

  /** Entries of a directory in on-disk (bytewise sorted) order, without `.` and `..`. */
  readdir(nid: number): ErofsDirEntry[] {
    const dir = this.dirRecord(nid);
    const out: ErofsDirEntry[] = [];
    const n = this.dirBlocks(dir);
    for (let i = 0; i < n; i++) {
      for (const e of this.dirBlock(dir, i)) {
        if (e.name.equals(DOT) || e.name.equals(DOTDOT)) continue;
        out.push({ name: Buffer.from(e.name), nid: e.nid, kind: kindOfFileType(e.fileType) ?? this.record(e.nid).kind });
      }
    }
    return out;
  }

  /** The nid of `name` in a directory (binary search as the kernel does); `.` and `..` work. */
  lookup(dirNid: number, name: Buffer): number | undefined {
    const dir = this.dirRecord(dirNid);
    if (dir.dotOmitted && name.equals(DOT)) return dirNid;
    if (name.length === 0) return undefined;
    const hit = lookupInBlocks(this.dirBlocks(dir), (i) => this.dirBlock(dir, i), name);
    return hit?.nid;
  }

  /** The nid at an absolute or root-relative path, without following symlinks. */
  resolve(path: string): number | undefined {
    let nid = this.rootNid;
    for (const part of path.split('/')) {
      if (part === '' || part === '.') continue;
      if (this.record(nid).kind !== 'dir') return undefined;
      const next = this.lookup(nid, Buffer.from(part, 'utf8'));
      if (next === undefined) return undefined;
      nid = next;
    }
    return nid;
  }

  readlink(nid: number): Buffer {
    const ino = this.record(nid);
    if (ino.kind !== 'symlink') throw new FormatError(`erofs: inode ${nid} is not a symlink`, { ...this.ctx, nid });
    if (ino.size > MAX_SYMLINK) throw new FormatError(`erofs: symlink ${nid} target of ${ino.size} bytes is too long`, { ...this.ctx, nid });
    return this.readSync(ino, 0, ino.size);
  }

  xattrs(nid: number): Xattr[] {
    const sb = this.superblock;
    return readXattrs({ blockSize: sb.blockSize, xattrBlkaddr: sb.xattrBlkaddr, imageSize: this.source.size, read: (o, l) => this.bytes(o, l), ctx: this.ctx }, this.record(nid));
  }

  /** How the bytes of [offset, offset+length) (default: the whole file) map to devices; holes marked. */
  fileExtents(nid: number, offset = 0, length = Number.MAX_SAFE_INTEGER): FileExtent[] {
    const ino = this.record(nid);
    return mapExtents(this.map, ino, offset, Math.min(Number.MAX_SAFE_INTEGER, offset + length));
  }

  /**
   * Read file bytes [offset, offset+length) clipped to the size. Device-0 extents come from this
   * reader's source; `devices.read` is called only for devices >= 1; holes are zeros.
   */
  async readFile(nid: number, offset: number, length: number, devices: DeviceReader): Promise<Buffer> {
    const ino = this.record(nid);
    const end = Math.min(ino.size, offset + length);
    if (offset >= end) return Buffer.alloc(0);
    const out = Buffer.alloc(end - offset);
    const pending: Promise<void>[] = [];
    for (const e of mapExtents(this.map, ino, offset, end)) {
      if (e.hole) continue;
      const at = e.fileOffset - offset;
      if (e.device === 0) {
        this.bytes(e.deviceOffset, e.length).copy(out, at);
        continue;
      }
      pending.push(devices.read(e.device, e.deviceOffset, e.length).then((b) => {
        if (b.length < e.length) {
          throw new FormatError(`erofs: device ${e.device} gave ${b.length} of ${e.length} bytes at ${e.deviceOffset}`, { ...this.ctx, nid, offset: e.deviceOffset });
        }
        b.copy(out, at, 0, e.length);
      }));
    }
    await Promise.all(pending);
    return out;
  }

  /** Every (path, nid) pair, the root first, depth-first in on-disk order. Hard links appear once per path. */
  *walk(): Generator<WalkEntry> {
    const visited = new Set<number>([this.rootNid]);
    const stack: { nid: number; path: Buffer }[] = [{ nid: this.rootNid, path: Buffer.alloc(0) }];
    yield { path: '/', pathBytes: Buffer.from('/'), nid: this.rootNid, kind: 'dir' };
    while (stack.length > 0) {
      const { nid, path } = stack.pop()!;
      const subdirs: { nid: number; path: Buffer }[] = [];
      for (const e of this.readdir(nid)) {
        const p = Buffer.concat([path, Buffer.from('/'), e.name]);
        const kind = this.record(e.nid).kind;
        yield { path: p.toString('utf8'), pathBytes: p, nid: e.nid, kind };
        if (kind === 'dir') {
          this.markVisited(visited, e.nid);
          subdirs.push({ nid: e.nid, path: p });
        }
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
    }
  }

  /** The whole tree as a model (file data: inline bytes from the bootstrap, or chunk locations). */
  toModel(): DirNode {
    const root = this.nodeFor(this.record(this.rootNid)) as DirNode;
    const visited = new Set<number>([this.rootNid]);
    const shared = new Map<number, ErofsNode>();
    const stack: { nid: number; node: DirNode }[] = [{ nid: this.rootNid, node: root }];
    while (stack.length > 0) {
      const { nid, node } = stack.pop()!;
      for (const e of this.readdir(nid)) {
        const rec = this.record(e.nid);
        let child = rec.kind === 'dir' ? undefined : shared.get(e.nid);
        if (child === undefined) {
          child = this.nodeFor(rec);
          if (rec.kind === 'dir') {
            this.markVisited(visited, e.nid);
            stack.push({ nid: e.nid, node: child as DirNode });
          } else {
            shared.set(e.nid, child);
          }
        }
        node.entries.push({ name: e.name, node: child });
      }
    }
    return root;
  }

  /** toModel plus the superblock's devices, times, uuid and volume name. */
  toSpec(): ErofsImageSpec {
    const sb = this.superblock;
    return {
      root: this.toModel(),
      devices: sb.devices.map((d) => ({ tag: d.tag, blocks: d.blocks })),
      buildTime: sb.buildTime,
      buildTimeNsec: sb.buildTimeNsec,
      uuid: sb.uuid,
      volumeName: sb.volumeLabel,
    };
  }

  // ---- internals ----

  private markVisited(visited: Set<number>, nid: number): void {
    if (visited.has(nid)) throw new FormatError(`erofs: directory ${nid} is reached twice (a cycle or a hard-linked directory)`, { ...this.ctx, nid });
    visited.add(nid);
  }

  private nodeFor(rec: InodeRecord): ErofsNode {
    const base = { perm: rec.perm, uid: rec.uid, gid: rec.gid, mtime: rec.mtime, mtimeNsec: rec.mtimeNsec, xattrs: this.xattrs(rec.nid) };
    switch (rec.kind) {
      case 'dir':
        return { ...base, kind: 'dir', entries: [] };
      case 'symlink':
        return { ...base, kind: 'symlink', target: this.readlink(rec.nid) };
      case 'chardev':
      case 'blockdev':
        return { ...base, kind: rec.kind, rdevMajor: rec.rdevMajor, rdevMinor: rec.rdevMinor };
      case 'fifo':
      case 'socket':
        return { ...base, kind: rec.kind };
      case 'file': {
        let data: FileData;
        if (rec.layout === 'chunk-based') {
          data = { kind: 'chunks', chunkBits: rec.chunkBits, chunks: readChunkTable(this.map, rec) };
        } else {
          data = { kind: 'inline', bytes: Buffer.from(this.readSync(rec, 0, rec.size)) };
        }
        return { ...base, kind: 'file', size: rec.size, data };
      }
    }
  }

  private record(nid: number): InodeRecord {
    let rec = this.inodes.get(nid);
    if (rec === undefined) {
      rec = readInodeRecord(this.superblock, (o, l) => this.bytes(o, l), this.source.size, nid, this.ctx);
      if (this.inodes.size >= INODE_CACHE_MAX) this.inodes.clear();
      this.inodes.set(nid, rec);
    }
    return rec;
  }

  private dirRecord(nid: number): InodeRecord {
    const dir = this.record(nid);
    if (dir.kind !== 'dir') throw new FormatError(`erofs: inode ${nid} is not a directory`, { ...this.ctx, nid });
    // Directory data always lives in the bootstrap, so it cannot be bigger than the image.
    if (dir.size > this.source.size) throw new FormatError(`erofs: directory ${nid} claims ${dir.size} bytes, more than the image`, { ...this.ctx, nid });
    return dir;
  }

  private dirBlocks(dir: InodeRecord): number {
    return Math.ceil(dir.size / this.blockSize);
  }

  private dirBlock(dir: InodeRecord, i: number): RawDirEntry[] {
    // A lookup binary-searches the blocks and a listing reads them all: parsed blocks are kept (the image never changes).
    const key = i < DIR_BLOCK_KEY_SPAN ? dir.nid * DIR_BLOCK_KEY_SPAN + i : -1;
    const hit = this.dirBlocksParsed.get(key);
    if (hit) return hit;
    const bs = this.blockSize;
    const buf = this.readSync(dir, i * bs, Math.min(bs, dir.size - i * bs));
    const parsed = parseDirBlock(buf, bs, dir.nid, i, this.ctx);
    if (key < 0) return parsed;
    if (this.dirBlocksParsed.size >= DIR_BLOCK_CACHE_MAX) this.dirBlocksParsed.clear();
    this.dirBlocksParsed.set(key, parsed);
    return parsed;
  }

  /** Inode data from the bootstrap only (directories, symlinks, inline files). */
  private readSync(ino: InodeRecord, offset: number, length: number): Buffer {
    const extents = mapExtents(this.map, ino, offset, offset + length);
    if (extents.length === 1 && !extents[0]!.hole && extents[0]!.device === 0 && extents[0]!.length === length) {
      return this.bytes(extents[0]!.deviceOffset, length);
    }
    const out = Buffer.alloc(length);
    for (const e of extents) {
      if (e.hole) continue;
      if (e.device !== 0) {
        throw new FormatError(`erofs: inode ${ino.nid} keeps metadata-like data on device ${e.device}; only the bootstrap can be read here`, { ...this.ctx, nid: ino.nid });
      }
      this.bytes(e.deviceOffset, e.length).copy(out, e.fileOffset - offset);
    }
    return out;
  }

  /** Bytes of device 0, bounds-checked. */
  private bytes(offset: number, length: number): Buffer {
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.source.size) {
      throw new FormatError(`erofs: read of ${length} bytes at ${offset} is outside the image (${this.source.size} bytes)`, { ...this.ctx, offset, length });
    }
    const b = this.source.read(offset, length);
    if (b.length !== length) throw new FormatError(`erofs: short read of the image at ${offset} (${b.length} of ${length} bytes)`, { ...this.ctx, offset, length });
    return b;
  }
}
