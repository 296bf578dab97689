/**
 * The session's file handles: open files and directories, and the passthrough backing ids of inodes.
 * One backing id per inode while it has passthrough opens: the kernel refuses two different backing
 * files, and cached + passthrough opens, on one inode. Handles and backing ids of a previous session
 * on the same connection are unknown here (their backing ids die with the connection).
 */
import { openSync, closeSync } from 'node:fs';
import type { Logger } from '../util/log.js';
import { fuseBackingClose, fuseBackingOpen } from './backing.js';
import { FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, FOPEN_PASSTHROUGH } from './layout.js';
import type { DirEntry, OpenResult } from './types.js';

export interface OpenFile {
  ino: number;
  /** The filesystem's own handle (OpenResult.fh). */
  fsFh: bigint;
  mode: 'cached' | 'direct' | 'passthrough';
}

export interface OpenDir {
  ino: number;
  /** The listing READDIR pages through, read at offset 0. */
  entries?: DirEntry[];
}

/** What to answer OPEN with. */
export interface Opened {
  fh: bigint;
  mode: OpenFile['mode'];
  openFlags: number;
  /** 0 unless passthrough. */
  backingId: number;
}

interface InodeIo {
  cachedOpens: number;
  passthroughOpens: number;
  backingId?: number;
}

export class OpenFiles {
  private readonly files = new Map<bigint, OpenFile>();
  private readonly dirs = new Map<bigint, OpenDir>();
  private readonly inodeIo = new Map<number, InodeIo>();
  private nextFh = 1n;

  constructor(private readonly devFd: number, private readonly log: Logger) {}

  /** Records an open the filesystem answered with r; passthrough only when the connection has it. */
  open(ino: number, r: OpenResult, passthroughNegotiated: boolean): Opened {
    const fh = this.nextFh++;
    const fsFh = r.fh ?? 0n;
    const io = this.inodeIo.get(ino) ?? { cachedOpens: 0, passthroughOpens: 0 };
    this.inodeIo.set(ino, io);
    // An inode already in passthrough mode stays there: its backing file was complete when registered,
    // and the kernel refuses a cached open next to a passthrough one (ETXTBSY).
    const wantsPassthrough = r.passthroughPath !== undefined || io.backingId !== undefined;
    if (wantsPassthrough && passthroughNegotiated && io.cachedOpens === 0) {
      const backingId = io.backingId ?? this.registerBacking(r.passthroughPath!);
      if (backingId !== undefined) {
        io.backingId = backingId;
        io.passthroughOpens++;
        this.files.set(fh, { ino, fsFh, mode: 'passthrough' });
        return { fh, mode: 'passthrough', openFlags: FOPEN_PASSTHROUGH, backingId };
      }
    }
    if (r.directIo) {
      this.files.set(fh, { ino, fsFh, mode: 'direct' });
      return { fh, mode: 'direct', openFlags: FOPEN_DIRECT_IO, backingId: 0 };
    }
    io.cachedOpens++;
    this.files.set(fh, { ino, fsFh, mode: 'cached' });
    return { fh, mode: 'cached', openFlags: r.keepCache === false ? 0 : FOPEN_KEEP_CACHE, backingId: 0 };
  }

  /** The filesystem's handle behind a session handle (0 for one opened by a previous session). */
  fsFh(fh: bigint): bigint {
    return this.files.get(fh)?.fsFh ?? 0n;
  }

  /** Forgets a handle, closing the inode's backing id with its last passthrough open. */
  release(fh: bigint): OpenFile | undefined {
    const file = this.files.get(fh);
    if (!file) return undefined; // opened by a previous session on this connection
    this.files.delete(fh);
    const io = this.inodeIo.get(file.ino);
    if (!io) return file;
    if (file.mode === 'cached') io.cachedOpens--;
    if (file.mode === 'passthrough' && --io.passthroughOpens === 0 && io.backingId !== undefined) {
      const r = fuseBackingClose(this.devFd, io.backingId);
      if (r < 0) this.log.warn({ backingId: io.backingId, errno: -r }, 'FUSE_DEV_IOC_BACKING_CLOSE failed');
      io.backingId = undefined;
    }
    if (io.cachedOpens === 0 && io.passthroughOpens === 0) this.inodeIo.delete(file.ino);
    return file;
  }

  openDir(ino: number): bigint {
    const fh = this.nextFh++;
    this.dirs.set(fh, { ino });
    return fh;
  }

  /**
   * The directory behind a handle; one opened by a previous session is adopted. Handle 0 is every
   * directory of a connection whose OPENDIRs the reader thread answered with ENOSYS (no handles).
   */
  dir(fh: bigint, ino: number): OpenDir {
    let dir = this.dirs.get(fh);
    if (!dir || dir.ino !== ino) {
      dir = { ino };
      this.dirs.set(fh, dir);
    }
    return dir;
  }

  releaseDir(fh: bigint): void {
    this.dirs.delete(fh);
  }

  private registerBacking(path: string): number | undefined {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      this.log.warn({ path, err: String(err) }, 'cannot open passthrough file; serving reads instead');
      return undefined;
    }
    try {
      const id = fuseBackingOpen(this.devFd, fd);
      if (id < 0) {
        this.log.warn({ path, errno: -id }, 'FUSE_DEV_IOC_BACKING_OPEN failed; serving reads instead');
        return undefined;
      }
      return id;
    } finally {
      closeSync(fd); // the kernel holds its own reference
    }
  }
}
