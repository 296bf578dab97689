/**
 * Interim FUSE filesystem for fuse-blobs (until src/transport/fuse-blobs provides one): a flat
 * directory with `bootstrap` and `blob-<i>` (device i+1). Inode numbers and file handles are fixed
 * functions of the layout, so a restarted worker serves the kernel's existing node ids unchanged.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { CachedBlob } from '../cache/types.js';
import type { DirEntry, FuseAttr, FuseFilesystem, OpenResult } from '../fuse/types.js';
import { NotFoundError } from '../util/errors.js';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const ROOT = 1;
const BOOTSTRAP = 2;
const FIRST_BLOB = 3;

export interface BlobsFsStats { passthroughOpens: number }

export class BlobsFilesystem implements FuseFilesystem {
  private bootstrapFile: Promise<FileHandle> | null = null;
  readonly counters: BlobsFsStats = { passthroughOpens: 0 };

  constructor(
    private readonly bootstrapPath: string,
    private readonly bootstrapSize: number,
    private readonly blobs: CachedBlob[],
    /** Offer passthrough for complete blobs (the session ignores it where the connection cannot). */
    private readonly passthrough: boolean,
  ) {}

  static names(blobCount: number): string[] {
    return ['bootstrap', ...Array.from({ length: blobCount }, (_, i) => `blob-${i}`)];
  }

  private attr(ino: number): FuseAttr {
    if (ino === ROOT) return { ino, size: 0, mode: S_IFDIR | 0o555, nlink: 2, uid: 0, gid: 0 };
    if (ino === BOOTSTRAP) return { ino, size: this.bootstrapSize, mode: S_IFREG | 0o444, nlink: 1, uid: 0, gid: 0 };
    const blob = this.blobs[ino - FIRST_BLOB];
    if (!blob) throw new NotFoundError(`no inode ${ino}`);
    return { ino, size: blob.size, mode: S_IFREG | 0o444, nlink: 1, uid: 0, gid: 0 };
  }

  lookup(parent: number, name: string): FuseAttr {
    if (parent === ROOT) {
      if (name === 'bootstrap') return this.attr(BOOTSTRAP);
      const m = /^blob-(\d+)$/.exec(name);
      if (m && Number(m[1]) < this.blobs.length) return this.attr(FIRST_BLOB + Number(m[1]));
    }
    throw new NotFoundError(`no ${name}`);
  }

  getattr(ino: number): FuseAttr {
    return this.attr(ino);
  }

  open(ino: number): OpenResult {
    this.attr(ino);
    const blob = this.blobs[ino - FIRST_BLOB];
    if (blob && this.passthrough && blob.isComplete()) {
      this.counters.passthroughOpens += 1;
      return { keepCache: true, passthroughPath: blob.dataPath };
    }
    return { keepCache: true };
  }

  async read(ino: number, _fh: bigint, offset: number, length: number): Promise<Buffer> {
    if (ino === BOOTSTRAP) {
      this.bootstrapFile ??= open(this.bootstrapPath, 'r');
      const fh = await this.bootstrapFile;
      const n = Math.max(0, Math.min(length, this.bootstrapSize - offset));
      const buf = Buffer.alloc(n);
      const { bytesRead } = await fh.read(buf, 0, n, offset);
      return buf.subarray(0, bytesRead);
    }
    const blob = this.blobs[ino - FIRST_BLOB];
    if (!blob) throw new NotFoundError(`no inode ${ino}`);
    return blob.read(offset, length);
  }

  readdir(ino: number): DirEntry[] {
    if (ino !== ROOT) throw new NotFoundError(`no directory ${ino}`);
    return BlobsFilesystem.names(this.blobs.length).map((name, i) => ({ name, ino: BOOTSTRAP + i, mode: S_IFREG }));
  }

  async close(): Promise<void> {
    const f = this.bootstrapFile;
    this.bootstrapFile = null;
    if (f) await (await f).close();
  }
}
