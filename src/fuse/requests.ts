/**
 * The requests that ask the filesystem something: decodes each body, calls the FuseFilesystem, encodes
 * the reply payload (or throws an errno). Also hands the reader thread an inode's FastReadSource.
 * Connection-level requests (INIT, FORGET, INTERRUPT) stay in session.ts.
 */
import { OndemandError } from '../util/errors.js';
import { EINVAL, ENOENT, ENOSYS, EROFS, errnoOf } from './errno.js';
import {
  FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE, Opcode, cBytes, decodeFh, decodeGetxattrIn, decodeOpenFlags, decodeReadIn, encodeAttrOut,
  encodeOpenOut, encodeStatfsOut, type InHeader,
} from './layout.js';
import { entryReply, negativeEntryReply, sizedReply, writeDirPage, xattrNames } from './metadata-replies.js';
import type { OpenFiles } from './open-files.js';
import type { FuseReader } from './reader.js';
import type { SessionSettings } from './session-options.js';
import type { FuseFilesystem, FuseSessionStats, RequestContext } from './types.js';

/** A reply payload (the session adds the header); undefined = empty. */
export type Reply = Promise<Buffer[] | undefined> | Buffer[] | undefined;

const DEFAULT_STATFS = { blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, bsize: 4096, namelen: 255, frsize: 4096 };

export class Requests {
  /** Inodes whose fast-read source was already asked for (and sent to the reader if there was one). */
  private readonly fastOffered = new Set<number>();

  constructor(
    private readonly fs: FuseFilesystem,
    private readonly settings: SessionSettings,
    private readonly files: OpenFiles,
    private readonly reader: FuseReader,
    private readonly counters: FuseSessionStats,
    /** Whether INIT settled passthrough (known only once it happened). */
    private readonly passthrough: () => boolean,
  ) {}

  handle(h: InHeader, body: Buffer, ctx: RequestContext): Reply {
    switch (h.opcode) {
      case Opcode.LOOKUP: return this.lookup(h.nodeid, cBytes(body), ctx);
      case Opcode.GETATTR: return this.getattr(h.nodeid, ctx);
      case Opcode.OPEN: return this.open(h.nodeid, decodeOpenFlags(body), ctx);
      case Opcode.READ: return this.read(h.nodeid, body, ctx);
      case Opcode.RELEASE: return this.release(decodeFh(body));
      case Opcode.FLUSH: return [];
      case Opcode.OPENDIR: return [encodeOpenOut(this.files.openDir(h.nodeid), FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE, 0)];
      case Opcode.READDIR: return this.readdir(h.nodeid, body, ctx, false);
      case Opcode.READDIRPLUS: return this.readdir(h.nodeid, body, ctx, true);
      case Opcode.RELEASEDIR:
        this.files.releaseDir(decodeFh(body));
        return [];
      case Opcode.READLINK: return this.readlink(h.nodeid, ctx);
      case Opcode.STATFS: return [encodeStatfsOut(this.fs.statfs?.(h.nodeid) ?? DEFAULT_STATFS)];
      case Opcode.GETXATTR: return this.getxattr(h.nodeid, body, ctx);
      case Opcode.LISTXATTR: return this.listxattr(h.nodeid, body, ctx);
      case Opcode.ACCESS: return []; // default_permissions: the kernel has checked the mode bits already
      case Opcode.DESTROY: return [];
      case Opcode.SETATTR: case Opcode.SYMLINK: case Opcode.MKNOD: case Opcode.MKDIR: case Opcode.UNLINK: case Opcode.RMDIR:
      case Opcode.RENAME: case Opcode.LINK: case Opcode.WRITE: case Opcode.SETXATTR: case Opcode.REMOVEXATTR: case Opcode.CREATE:
      case Opcode.FALLOCATE:
        // Every filesystem served here is an image: read-only (the mount is too, so the VFS mostly answers first).
        throw new OndemandError('EFUSE', `write-type FUSE opcode ${h.opcode} on a read-only image`, {}, { errno: EROFS });
      default:
        this.counters.unsupported++;
        throw new OndemandError('EFUSE', `unsupported FUSE opcode ${h.opcode}`, {}, { errno: ENOSYS });
    }
  }

  private async lookup(parent: number, name: Buffer, ctx: RequestContext): Promise<Buffer[]> {
    try {
      return [entryReply(this.settings, await this.fs.lookup(parent, name, ctx))];
    } catch (err) {
      if (errnoOf(err) !== ENOENT) throw err;
      return [negativeEntryReply(this.settings)];
    }
  }

  private async getattr(ino: number, ctx: RequestContext): Promise<Buffer[]> {
    return [encodeAttrOut(this.settings.attrTimeout, await this.fs.getattr(ino, ctx))];
  }

  private async open(ino: number, flags: number, ctx: RequestContext): Promise<Buffer[]> {
    const opened = this.files.open(ino, await this.fs.open(ino, flags, ctx), this.passthrough());
    this.counters.opens++;
    if (opened.mode === 'passthrough') this.counters.passthroughOpens++;
    // Before the reply: the kernel sends READs only after it, and the reader must know the source then.
    else this.offerFastReads(ino);
    return [encodeOpenOut(opened.fh, opened.openFlags, opened.backingId)];
  }

  /** Hands the reader the inode's FastReadSource, once per inode (an open made by a previous session included). */
  private offerFastReads(ino: number): void {
    if (!this.settings.fastReads || this.fastOffered.has(ino)) return;
    this.fastOffered.add(ino);
    const source = this.fs.fastReadSource?.(ino);
    if (source) this.reader.addSource(ino, source);
  }

  private async read(ino: number, body: Buffer, ctx: RequestContext): Promise<Buffer[]> {
    const r = decodeReadIn(body);
    this.offerFastReads(ino);
    const data = await this.fs.read(ino, this.files.fsFh(r.fh), r.offset, r.size, ctx);
    this.counters.reads++;
    this.counters.bytesRead += Math.min(data.length, r.size);
    return [data.length > r.size ? data.subarray(0, r.size) : data];
  }

  private async release(fh: bigint): Promise<Buffer[]> {
    const file = this.files.release(fh);
    if (file) await this.fs.release?.(file.ino, file.fsFh);
    return [];
  }

  /** READDIR and READDIRPLUS page through the listing read at offset 0 (metadata-replies.ts). */
  private async readdir(ino: number, body: Buffer, ctx: RequestContext, plus: boolean): Promise<Buffer[]> {
    const r = decodeReadIn(body);
    const dir = this.files.dir(r.fh, ino);
    if (!dir.entries || r.offset === 0) dir.entries = await this.fs.readdir(ino, ctx);
    const out = Buffer.alloc(r.size);
    return [out.subarray(0, writeDirPage(out, 0, r.size, dir.entries, r.offset, plus, this.settings))];
  }

  private async readlink(ino: number, ctx: RequestContext): Promise<Buffer[]> {
    if (!this.fs.readlink) throw new OndemandError('EFUSE', 'not a symlink', { ino }, { errno: EINVAL });
    const target = await this.fs.readlink(ino, ctx);
    return [typeof target === 'string' ? Buffer.from(target) : target];
  }

  private async getxattr(ino: number, body: Buffer, ctx: RequestContext): Promise<Buffer[]> {
    if (!this.fs.getxattr) throw new OndemandError('EFUSE', 'no xattrs', { ino }, { errno: ENOSYS });
    const { size, name } = decodeGetxattrIn(body);
    return [sizedReply(await this.fs.getxattr(ino, name, ctx), size)];
  }

  private async listxattr(ino: number, body: Buffer, ctx: RequestContext): Promise<Buffer[]> {
    if (!this.fs.listxattr) throw new OndemandError('EFUSE', 'no xattrs', { ino }, { errno: ENOSYS });
    const { size } = decodeGetxattrIn(body); // LISTXATTR sends fuse_getxattr_in without a name
    return [sizedReply(xattrNames(await this.fs.listxattr(ino, ctx)), size)];
  }
}
