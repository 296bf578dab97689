/**
 * The fuse-blobs view of one image: a flat read-only directory holding
 *   bootstrap      the erofs meta image (a local file, served with pread or passthrough)
 *   <blobId>       one file per data blob, named by its blob id (sha256 hex of the uncompressed view),
 *                  size = uncompressed size; READ → CachedBlob.read (fetching missing frames).
 * A blob that is complete when opened is handed to the kernel with FUSE passthrough on its cache data
 * file, under a cache lease held until the file's RELEASE (or close()), so eviction never truncates it
 * under the kernel; a blob with holes never is (the kernel would read the holes as zeros).
 * Without passthrough, the session's reader thread answers READs of the bootstrap and of the blobs'
 * present frames itself (fastReadSource: the cache's read-only presence view); the rest comes here.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { OndemandError } from '../../util/errors.js';
import { FUSE_ROOT_ID, S_IFDIR, S_IFREG } from '../../fuse/layout.js';
import type { CachedBlob } from '../../cache/types.js';
import type { DirEntry, FastReadSource, FuseAttr, FuseFilesystem, FuseStatfs, OpenResult } from '../../fuse/types.js';

export const BOOTSTRAP_NAME = 'bootstrap';
const BOOTSTRAP_INO = 2;
const FIRST_BLOB_INO = 3;
const ENOENT = 2;

export interface FuseBlobsOptions {
  /** Local path of the uncompressed bootstrap (erofs meta image). */
  bootstrapPath: string;
  /** Data blobs in erofs device-table order. */
  blobs: readonly CachedBlob[];
  /** Offer passthrough for complete blobs (and the bootstrap). Default true. */
  passthrough?: boolean;
  /** For errors. */
  image?: string;
}

export interface FuseBlobsStats {
  /** READ requests answered through the cache (blob files), by read() or the reader thread's fast path. */
  blobReads: number;
  blobBytesRead: number;
  bootstrapReads: number;
  /**
   * Opens of a complete blob that asked the session for passthrough (the session falls back to
   * READs if the kernel cannot take it; FuseSessionStats.passthroughOpens counts what it got).
   */
  passthroughRequested: number;
  /** Opens served by READs through the cache (blobs with holes). */
  cachedOpens: number;
  /** Opens of a complete blob without passthrough (the FUSE page cache keeps what READs brought). */
  pageCacheOpens: number;
}

export class FuseBlobsFilesystem implements FuseFilesystem {
  private readonly bootstrapPath: string;
  private readonly bootstrapSize: number;
  private readonly blobs: readonly CachedBlob[];
  private readonly byName = new Map<string, number>();
  private readonly passthrough: boolean;
  private passthroughEnded = false;
  private readonly image: string | undefined;
  private bootstrapHandle?: Promise<FileHandle>;
  private readonly mtime = Date.now() / 1000;
  private readonly counters: FuseBlobsStats = { blobReads: 0, blobBytesRead: 0, bootstrapReads: 0, passthroughRequested: 0, cachedOpens: 0, pageCacheOpens: 0 };
  /** Cache leases of passthrough opens, by the fh open() answered (released on RELEASE or close()). */
  private readonly leases = new Map<bigint, () => void>();
  private nextFh = 1n;
  /** Per fast-read source handed out: [0] READs, [1] bytes served by the reader thread. */
  private readonly fastServed = { bootstrap: [] as BigInt64Array[], blobs: [] as BigInt64Array[] };

  constructor(options: FuseBlobsOptions) {
    this.bootstrapPath = options.bootstrapPath;
    this.bootstrapSize = statSync(options.bootstrapPath).size;
    this.blobs = options.blobs;
    this.passthrough = options.passthrough ?? true;
    this.image = options.image;
    this.byName.set(BOOTSTRAP_NAME, BOOTSTRAP_INO);
    options.blobs.forEach((b, i) => {
      if (!this.byName.has(b.blobId)) this.byName.set(b.blobId, FIRST_BLOB_INO + i);
    });
  }

  /** File names of the blobs in device-table order (a duplicated blob id repeats its file). */
  blobNames(): string[] {
    return this.blobs.map((b) => b.blobId);
  }

  stats(): FuseBlobsStats {
    const s = { ...this.counters };
    for (const c of this.fastServed.bootstrap) s.bootstrapReads += Number(Atomics.load(c, 0));
    for (const c of this.fastServed.blobs) {
      s.blobReads += Number(Atomics.load(c, 0));
      s.blobBytesRead += Number(Atomics.load(c, 1));
    }
    return s;
  }

  /**
   * The bootstrap is a complete local file; a blob is its cache data file under the cache's presence
   * view (only present frames, checked by the reader per READ). Blobs without a view: none.
   */
  fastReadSource(ino: number): FastReadSource | undefined {
    const served = new BigInt64Array(new SharedArrayBuffer(16));
    if (ino === BOOTSTRAP_INO) {
      this.fastServed.bootstrap.push(served);
      return { path: this.bootstrapPath, size: this.bootstrapSize, served };
    }
    const view = this.blob(ino)?.presenceView?.();
    if (!view) return undefined;
    this.fastServed.blobs.push(served);
    return {
      path: view.dataPath, size: view.size, served,
      presence: { frameSize: view.frameSize, bits: view.bits, written: view.written, state: view.state, hits: view.hits },
    };
  }

  /** The reader thread served a frame of a blob that has holes: its read-ahead goes on (cache: readElsewhere). */
  servedOnThread(ino: number, offset: number, length: number): void {
    this.blob(ino)?.readElsewhere?.(offset, length);
  }

  private blob(ino: number): CachedBlob | undefined {
    return ino >= FIRST_BLOB_INO ? this.blobs[ino - FIRST_BLOB_INO] : undefined;
  }

  private attr(ino: number): FuseAttr {
    if (ino === FUSE_ROOT_ID) return { ino, size: 4096, mode: S_IFDIR | 0o555, nlink: 2, uid: 0, gid: 0, mtime: this.mtime };
    if (ino === BOOTSTRAP_INO) return { ino, size: this.bootstrapSize, mode: S_IFREG | 0o444, nlink: 1, uid: 0, gid: 0, mtime: this.mtime };
    const blob = this.blob(ino);
    if (!blob) throw new OndemandError('ENOTFOUND', 'no such inode in fuse-blobs', { image: this.image, ino }, { errno: ENOENT });
    return { ino, size: blob.size, mode: S_IFREG | 0o444, nlink: 1, uid: 0, gid: 0, mtime: this.mtime };
  }

  lookup(parent: number, nameBytes: Buffer): FuseAttr {
    const name = nameBytes.toString('utf8');
    const ino = parent === FUSE_ROOT_ID ? this.byName.get(name) : undefined;
    if (ino === undefined) throw new OndemandError('ENOTFOUND', `no file ${name} in fuse-blobs`, { image: this.image }, { errno: ENOENT });
    return this.attr(ino);
  }

  getattr(ino: number): FuseAttr {
    return this.attr(ino);
  }

  /**
   * No passthrough for opens from now on: the process ends (its supervisor died), and a file opened
   * so would go on reading the cache file after it, unchecked, where a FUSE open fails instead.
   */
  endPassthrough(): void {
    this.passthroughEnded = true;
  }

  open(ino: number): OpenResult {
    const passthrough = this.passthrough && !this.passthroughEnded;
    if (ino === BOOTSTRAP_INO) {
      return passthrough ? { keepCache: true, passthroughPath: this.bootstrapPath } : { keepCache: true };
    }
    const blob = this.blob(ino);
    if (!blob) throw new OndemandError('ENOTFOUND', 'no such file in fuse-blobs', { image: this.image, ino }, { errno: ENOENT });
    // Only a complete blob may be read by the kernel directly, or kept in its page cache: a hole would
    // read as zeros, and readahead into a hole would fetch frames nobody asked for.
    if (passthrough) {
      // Leased before the check (isComplete is false while an eviction runs) and until RELEASE: the
      // kernel reads the data file itself for as long as the file is open.
      const release = leaseIfComplete(blob);
      if (release) {
        const fh = this.nextFh++;
        this.leases.set(fh, release);
        this.counters.passthroughRequested++;
        return { fh, keepCache: true, passthroughPath: blob.openDataPath ?? blob.dataPath };
      }
    } else if (blob.isComplete()) {
      // Immutable, nothing left to fetch: the FUSE page cache keeps what the kernel read, so warm reads
      // never come here (the bytes sit in the page cache twice, the FUSE file's and the cache file's).
      this.counters.pageCacheOpens++;
      return { keepCache: true };
    }
    // No page cache of its own: the kernel reads exactly what erofs asks for, never ahead into frames
    // of other files (which made a second mount fetch what the first had not).
    this.counters.cachedOpens++;
    return { directIo: true };
  }

  async read(ino: number, _fh: bigint, offset: number, length: number): Promise<Buffer> {
    if (ino === BOOTSTRAP_INO) {
      this.counters.bootstrapReads++;
      this.bootstrapHandle ??= open(this.bootstrapPath, 'r');
      const handle = await this.bootstrapHandle;
      const n = Math.max(0, Math.min(length, this.bootstrapSize - offset));
      const buf = Buffer.allocUnsafe(n);
      const { bytesRead } = await handle.read(buf, 0, n, offset);
      return buf.subarray(0, bytesRead);
    }
    const blob = this.blob(ino);
    if (!blob) throw new OndemandError('ENOTFOUND', 'no such file in fuse-blobs', { image: this.image, ino }, { errno: ENOENT });
    if (offset >= blob.size) return Buffer.alloc(0);
    const data = await blob.read(offset, Math.min(length, blob.size - offset));
    this.counters.blobReads++;
    this.counters.blobBytesRead += data.length;
    return data;
  }

  /** RELEASE of a file: a passthrough open's lease goes with it. */
  release(_ino: number, fh: bigint): void {
    const release = this.leases.get(fh);
    if (!release) return;
    this.leases.delete(fh);
    release();
  }

  readdir(ino: number): DirEntry[] {
    if (ino !== FUSE_ROOT_ID) throw new OndemandError('EFUSE', 'not a directory', { ino }, { errno: 20 });
    return [...this.byName.entries()].map(([name, i]) => ({ name, ino: i, mode: S_IFREG }));
  }

  statfs(): FuseStatfs {
    const bytes = this.bootstrapSize + this.blobs.reduce((n, b) => n + b.size, 0);
    return { blocks: Math.ceil(bytes / 4096), bfree: 0, bavail: 0, files: this.byName.size + 1, ffree: 0, bsize: 4096, namelen: 255, frsize: 4096 };
  }

  /** Closes the bootstrap handle and releases the passthrough leases (after unmount). */
  async close(): Promise<void> {
    for (const release of this.leases.values()) release();
    this.leases.clear();
    const h = this.bootstrapHandle;
    this.bootstrapHandle = undefined;
    if (h) await (await h).close();
  }
}

/** A lease on `blob` if it is complete now (a blob without leases: a no-op release when complete). */
export function leaseIfComplete(blob: CachedBlob): (() => void) | undefined {
  return blob.leaseIfComplete ? blob.leaseIfComplete() : blob.isComplete() ? () => undefined : undefined;
}
