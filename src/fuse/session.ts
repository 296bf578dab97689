/**
 * One FUSE connection: decodes requests from /dev/fuse, calls a FuseFilesystem, writes replies.
 *
 * - Requests are handled concurrently (a slow READ never holds up a LOOKUP); INTERRUPT aborts the
 *   request's signal, and the reply to an interrupted request may fail with ENOENT (ignored).
 * - Fast reads: on OPEN (or the first READ of an inode opened by a previous session) the session asks
 *   the filesystem for a FastReadSource and hands it to the reader thread, which then answers the READs
 *   it can from the local file itself (see reader.ts); the rest still come here.
 * - Passthrough: when the filesystem asks for it on OPEN, the session registers the local file as a
 *   backing file (one backing id per inode while it has passthrough opens: the kernel refuses two
 *   different backing files, and cached + passthrough opens, on one inode).
 * - A session can be created on an already mounted, already initialised connection (a supervisor
 *   keeping the fd across worker restarts): pass the `params` INIT settled and INIT is skipped.
 *   Requests the previous server read but never answered are asked back with FUSE_NOTIFY_RESEND.
 *   Backing ids registered by a previous session are unknown here; they die with the connection (and
 *   a new passthrough open of an inode the old session left open with one fails in the kernel: EBUSY).
 */
import { openSync, closeSync, writevSync } from 'node:fs';
import { logFor, type Logger } from '../util/log.js';
import { OndemandError } from '../util/errors.js';
import { fuseBackingClose, fuseBackingOpen } from '../native/fuse.js';
import { DEFAULT_SPLICE_MIN_BYTES, FuseReader } from './reader.js';
import { pipePagesAllowed } from '../native/pipe.js';
import {
  FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION, FOPEN_CACHE_DIR, FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE,
  FOPEN_PASSTHROUGH, FUSE_MIN_READ_BUFFER, IN_HEADER_SIZE, InitFlag, InitFlag2, NotifyCode, OUT_HEADER_SIZE, Opcode,
  WRITE_REQUEST_OVERHEAD, cString, decodeBatchForgetIn, decodeFh, decodeForgetIn,
  decodeGetxattrIn, decodeInHeader, decodeInitIn, decodeInterruptIn, decodeOpenFlags, decodeReadIn,
  direntSize, direntType, encodeAttrOut, encodeEntryOut, encodeGetxattrOut, encodeInitOut, encodeOpenOut,
  encodeOutHeader, encodeStatfsOut, writeDirent, type InHeader,
} from './layout.js';
import type {
  DirEntry, FuseConnectionParams, FuseFilesystem, FuseSessionStats, RequestContext,
} from './types.js';

/** Random 4 KiB READs on a quiet host: 39 us per read without spinning, 30 with (bench/RESULTS.md). */
const DEFAULT_SPIN_MICROS = 30;

/** 256 pages, unless replies are spliced and a pipe cannot hold 256 pages plus the header's. */
function defaultMaxPages(spliceMinBytes: number): number {
  return spliceMinBytes > 0 ? Math.max(32, Math.min(256, pipePagesAllowed() - 1)) : 256;
}

const ENOENT = 2;
const EINTR = 4;
const EIO = 5;
const ENODEV = 19;
const EINVAL = 22;
const ERANGE = 34;
const ENOSYS = 38;
const EPROTO = 71;

/** Images are immutable: the kernel may cache names and attributes for a year. */
const DEFAULT_TIMEOUT = 365 * 24 * 3600;

export interface FuseSessionOptions {
  /** For logs. */
  name?: string;
  entryTimeout?: number;
  attrTimeout?: number;
  /** Negotiate FUSE passthrough when the kernel offers it (default true). */
  passthrough?: boolean;
  /**
   * Largest READ the kernel may send, in pages. Default 256 (1 MiB), or 255 when the reader splices
   * replies and a pipe may not hold 257 pages (no CAP_SYS_RESOURCE): a spliced 1020 KiB READ beat an
   * unspliced 1 MiB one (bench/RESULTS.md).
   */
  maxPages?: number;
  maxWrite?: number;
  maxReadahead?: number;
  /** Requests the kernel may have in flight in the background (readahead). */
  maxBackground?: number;
  /**
   * Let the reader thread answer READs itself when the filesystem gives a FastReadSource for the
   * inode (default true; false sends every READ to FuseFilesystem.read).
   */
  fastReads?: boolean;
  /**
   * After a request the reader thread keeps polling the device without sleeping for this long
   * (default 30): trades CPU for the wake-up latency of the next request.
   */
  readerSpinMicros?: number;
  /**
   * Helper threads that answer large fast READs next to the reader thread, so several are copied at
   * once (default 0: each is a V8 isolate, ~10 MB, and no gain was measurable on a loaded 2-core host).
   */
  readerCopyThreads?: number;
  /** READs answered with splice(2) from this size up (see ReaderOptions.spliceMinBytes; 0 = never). */
  readerSpliceMinBytes?: number;
  /** The connection is already initialised with these parameters: do not wait for INIT. */
  params?: FuseConnectionParams;
  /**
   * With `params`: ask the kernel to resend requests the previous server read but never answered
   * (FUSE_NOTIFY_RESEND). Default true.
   */
  resend?: boolean;
}

interface OpenFile {
  ino: number;
  fsFh: bigint;
  mode: 'cached' | 'direct' | 'passthrough';
}

interface OpenDir {
  ino: number;
  entries?: DirEntry[];
}

interface InodeIo {
  cachedOpens: number;
  passthroughOpens: number;
  backingId?: number;
}

export class FuseSession {
  readonly fd: number;
  private readonly fs: FuseFilesystem;
  private readonly options: Required<Omit<FuseSessionOptions, 'params' | 'name' | 'resend'>>;
  /** Inodes whose fast-read source was already asked for (and sent to the reader if there was one). */
  private readonly fastOffered = new Set<number>();
  private readonly log: Logger;
  private connection?: FuseConnectionParams;
  private readonly reader: FuseReader;
  private readonly inFlight = new Map<bigint, AbortController>();
  private readonly files = new Map<bigint, OpenFile>();
  private readonly dirs = new Map<bigint, OpenDir>();
  private readonly inodeIo = new Map<number, InodeIo>();
  private nextFh = 1n;
  private readonly counters: FuseSessionStats = {
    requests: 0, reads: 0, bytesRead: 0, opens: 0, passthroughOpens: 0, interrupts: 0, errors: 0, unsupported: 0, inFlight: 0,
  };
  private readyWaiters: { resolve: (p: FuseConnectionParams) => void; reject: (e: Error) => void }[] = [];
  private endErrno: number | undefined;
  /** After stop(): a successor owns the connection, this session writes nothing more. */
  private detached = false;
  private readonly ended: Promise<number>;

  private constructor(fd: number, fs: FuseFilesystem, options: FuseSessionOptions) {
    this.fd = fd;
    this.fs = fs;
    this.log = logFor({ fuse: options.name ?? `fd${fd}` });
    this.options = {
      entryTimeout: options.entryTimeout ?? DEFAULT_TIMEOUT,
      attrTimeout: options.attrTimeout ?? DEFAULT_TIMEOUT,
      passthrough: options.passthrough ?? true,
      maxPages: options.maxPages ?? defaultMaxPages(options.readerSpliceMinBytes ?? DEFAULT_SPLICE_MIN_BYTES),
      maxWrite: options.maxWrite ?? 128 * 1024,
      maxReadahead: options.maxReadahead ?? 1024 * 1024,
      maxBackground: options.maxBackground ?? 64,
      fastReads: options.fastReads ?? true,
      readerSpinMicros: options.readerSpinMicros ?? DEFAULT_SPIN_MICROS,
      readerCopyThreads: options.readerCopyThreads ?? 0,
      readerSpliceMinBytes: options.readerSpliceMinBytes ?? DEFAULT_SPLICE_MIN_BYTES,
    };
    this.connection = options.params;
    let resolveEnded!: (errno: number) => void;
    this.ended = new Promise((resolve) => { resolveEnded = resolve; });
    const bufferSize = Math.max(FUSE_MIN_READ_BUFFER, this.options.maxWrite + WRITE_REQUEST_OVERHEAD) + 4096;
    const replySize = Math.max(this.options.maxPages, options.params?.maxPages ?? 0) * 4096;
    this.reader = new FuseReader(fd, { bufferSize, replySize, spinMicros: this.options.readerSpinMicros, copyThreads: this.options.readerCopyThreads, spliceMinBytes: this.options.readerSpliceMinBytes }, {
      onRequest: (req) => this.dispatch(req),
      onEnd: (errno) => {
        this.endErrno = errno;
        for (const c of this.inFlight.values()) c.abort();
        const err = new OndemandError('EFUSE', `FUSE connection ended before INIT (errno ${errno})`, {}, { errno: ENODEV });
        for (const w of this.readyWaiters) w.reject(err);
        this.readyWaiters = [];
        resolveEnded(errno);
      },
    });
    if (options.params && options.resend !== false) this.resendPending();
  }

  /**
   * FUSE_NOTIFY_RESEND: the kernel puts every request that was read but not answered back in the
   * queue, so a successor session answers what a dead one had taken. False when the kernel refused.
   */
  resendPending(): boolean {
    try {
      writevSync(this.fd, [encodeOutHeader(OUT_HEADER_SIZE, NotifyCode.RESEND, 0n)]);
      return true;
    } catch (err) {
      this.log.warn({ err: String(err) }, 'FUSE_NOTIFY_RESEND refused; requests taken by the previous server stay unanswered');
      return false;
    }
  }

  /** Serves a freshly mounted connection (waits for INIT) or, with `options.params`, an initialised one. */
  static start(fd: number, fs: FuseFilesystem, options: FuseSessionOptions = {}): FuseSession {
    return new FuseSession(fd, fs, options);
  }

  /** Serves a connection inherited from a supervisor (pidfd_getfd): INIT already happened. */
  static fromFd(fd: number, fs: FuseFilesystem, params: FuseConnectionParams, options: Omit<FuseSessionOptions, 'params'> = {}): FuseSession {
    return new FuseSession(fd, fs, { ...options, params });
  }

  /** Resolves once INIT has been answered (at once for an inherited connection). */
  ready(): Promise<FuseConnectionParams> {
    if (this.connection) return Promise.resolve(this.connection);
    if (this.endErrno !== undefined) return Promise.reject(new OndemandError('EFUSE', 'FUSE connection ended before INIT', {}, { errno: ENODEV }));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  get params(): FuseConnectionParams | undefined {
    return this.connection;
  }

  /** Resolves with the reader's end errno: 19 (ENODEV) when unmounted/aborted, 0 when stopped. */
  whenEnded(): Promise<number> {
    return this.ended;
  }

  stats(): FuseSessionStats {
    const fast = this.reader.served();
    return {
      ...this.counters, inFlight: this.inFlight.size,
      reads: this.counters.reads + fast.reads, bytesRead: this.counters.bytesRead + fast.bytes, fastReads: fast.reads,
    };
  }

  /**
   * Stops reading and answering (the connection stays mounted, the fd open). Requests taken but not
   * answered are left to a successor session, which gets them back through FUSE_NOTIFY_RESEND.
   */
  async stop(): Promise<void> {
    this.detached = true;
    await this.reader.stop();
  }

  /** Lets the process exit while the session is idle (tests, CLI one-shots). */
  unref(): void {
    this.reader.unref();
  }

  // ---- dispatch ----------------------------------------------------------------------------------

  private dispatch(req: Buffer): void {
    if (this.detached) return; // the successor gets it again (FUSE_NOTIFY_RESEND)
    const h = decodeInHeader(req);
    const body = req.subarray(IN_HEADER_SIZE, h.len);
    this.counters.requests++;
    switch (h.opcode) {
      case Opcode.INIT:
        this.init(h, body);
        return;
      case Opcode.FORGET:
        this.fs.forget?.(h.nodeid, decodeForgetIn(body));
        return;
      case Opcode.BATCH_FORGET:
        for (const f of decodeBatchForgetIn(body)) this.fs.forget?.(f.nodeid, f.nlookup);
        return;
      case Opcode.INTERRUPT: {
        const target = this.inFlight.get(decodeInterruptIn(body));
        if (target) {
          this.counters.interrupts++;
          target.abort();
        }
        return;
      }
      default:
        break;
    }
    const controller = new AbortController();
    this.inFlight.set(h.unique, controller);
    const ctx: RequestContext = { uid: h.uid, gid: h.gid, pid: h.pid, signal: controller.signal };
    let result: Promise<Buffer[] | undefined>;
    try {
      result = Promise.resolve(this.handle(h, body, ctx));
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (payload) => {
        this.inFlight.delete(h.unique);
        this.reply(h.unique, 0, payload ?? []);
      },
      (err: unknown) => {
        this.inFlight.delete(h.unique);
        const errno = controller.signal.aborted ? EINTR : errnoOf(err);
        if (errno !== ENOENT && errno !== ENOSYS) {
          this.counters.errors++;
          this.log.debug({ opcode: h.opcode, nodeid: h.nodeid, errno, err: String(err) }, 'FUSE request failed');
        }
        this.reply(h.unique, -errno, []);
      },
    );
  }

  private handle(h: InHeader, body: Buffer, ctx: RequestContext): Promise<Buffer[] | undefined> | Buffer[] | undefined {
    switch (h.opcode) {
      case Opcode.LOOKUP: return this.lookup(h.nodeid, cString(body), ctx);
      case Opcode.GETATTR: return this.getattr(h.nodeid, ctx);
      case Opcode.OPEN: return this.open(h.nodeid, decodeOpenFlags(body), ctx);
      case Opcode.READ: return this.read(h.nodeid, body, ctx);
      case Opcode.RELEASE: return this.release(decodeFh(body));
      case Opcode.FLUSH: return [];
      case Opcode.OPENDIR: return this.opendir(h.nodeid);
      case Opcode.READDIR: return this.readdir(h.nodeid, body, ctx);
      case Opcode.RELEASEDIR:
        this.dirs.delete(decodeFh(body));
        return [];
      case Opcode.READLINK: return this.readlink(h.nodeid, ctx);
      case Opcode.STATFS: return [encodeStatfsOut(this.fs.statfs?.(h.nodeid) ?? {
        blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, bsize: 4096, namelen: 255, frsize: 4096,
      })];
      case Opcode.GETXATTR: return this.getxattr(h.nodeid, body, ctx);
      case Opcode.LISTXATTR: return this.listxattr(h.nodeid, body, ctx);
      case Opcode.ACCESS: return []; // default_permissions: the kernel has checked the mode bits already
      case Opcode.DESTROY: return [];
      default:
        this.counters.unsupported++;
        throw new OndemandError('EFUSE', `unsupported FUSE opcode ${h.opcode}`, {}, { errno: ENOSYS });
    }
  }

  private init(h: InHeader, body: Buffer): void {
    const k = decodeInitIn(body);
    if (k.major !== FUSE_KERNEL_VERSION) {
      // A newer major: answer with ours and the kernel retries; an older one we cannot speak.
      this.reply(h.unique, k.major > FUSE_KERNEL_VERSION ? 0 : -EPROTO, k.major > FUSE_KERNEL_VERSION
        ? [encodeInitOut({ major: FUSE_KERNEL_VERSION, minor: FUSE_KERNEL_MINOR_VERSION, maxReadahead: 0, flags: 0, maxBackground: 0, congestionThreshold: 0, maxWrite: 0, timeGran: 0, maxPages: 0, flags2: 0, maxStackDepth: 0 })]
        : []);
      return;
    }
    const wanted = InitFlag.ASYNC_READ | InitFlag.PARALLEL_DIROPS | InitFlag.MAX_PAGES | InitFlag.INIT_EXT
      | InitFlag.ASYNC_DIO | InitFlag.CACHE_SYMLINKS | InitFlag.BIG_WRITES;
    const flags = k.flags & wanted;
    const passthrough = this.options.passthrough && (flags & InitFlag.INIT_EXT) !== 0 && (k.flags2 & InitFlag2.PASSTHROUGH) !== 0;
    const minor = Math.min(k.minor, FUSE_KERNEL_MINOR_VERSION);
    const maxReadahead = Math.min(k.maxReadahead, this.options.maxReadahead);
    this.connection = {
      minor, passthrough, maxWrite: this.options.maxWrite, maxPages: this.options.maxPages, maxReadahead,
    };
    this.reply(h.unique, 0, [encodeInitOut({
      major: FUSE_KERNEL_VERSION,
      minor,
      maxReadahead,
      flags,
      maxBackground: this.options.maxBackground,
      congestionThreshold: Math.floor((this.options.maxBackground * 3) / 4),
      maxWrite: this.options.maxWrite,
      timeGran: 1,
      maxPages: this.options.maxPages,
      flags2: passthrough ? InitFlag2.PASSTHROUGH : 0,
      // The backing files live on plain filesystems; erofs may stack on top of this one.
      maxStackDepth: passthrough ? 1 : 0,
    })]);
    this.log.debug({ kernelMinor: k.minor, flags: k.flags, flags2: k.flags2, passthrough }, 'FUSE INIT');
    const params = this.connection;
    for (const w of this.readyWaiters) w.resolve(params);
    this.readyWaiters = [];
  }

  private async lookup(parent: number, name: string, ctx: RequestContext): Promise<Buffer[]> {
    try {
      const attr = await this.fs.lookup(parent, name, ctx);
      return [encodeEntryOut(attr.ino, 0, this.options.entryTimeout, this.options.attrTimeout, attr)];
    } catch (err) {
      if (errnoOf(err) !== ENOENT) throw err;
      // A negative entry (node id 0) the kernel caches: the image never gains files.
      return [encodeEntryOut(0, 0, this.options.entryTimeout, 0, { ino: 0, size: 0, mode: 0, nlink: 0, uid: 0, gid: 0 })];
    }
  }

  private async getattr(ino: number, ctx: RequestContext): Promise<Buffer[]> {
    return [encodeAttrOut(this.options.attrTimeout, await this.fs.getattr(ino, ctx))];
  }

  private async open(ino: number, flags: number, ctx: RequestContext): Promise<Buffer[]> {
    const r = await this.fs.open(ino, flags, ctx);
    const fh = this.nextFh++;
    this.counters.opens++;
    const io = this.inodeIo.get(ino) ?? { cachedOpens: 0, passthroughOpens: 0 };
    this.inodeIo.set(ino, io);
    // An inode already in passthrough mode stays there: its backing file was complete when registered,
    // and the kernel refuses a cached open next to a passthrough one (ETXTBSY).
    const wantsPassthrough = r.passthroughPath !== undefined || io.backingId !== undefined;
    if (wantsPassthrough && this.connection?.passthrough === true && io.cachedOpens === 0) {
      const backingId = io.backingId ?? this.registerBacking(r.passthroughPath!);
      if (backingId !== undefined) {
        io.backingId = backingId;
        io.passthroughOpens++;
        this.counters.passthroughOpens++;
        this.files.set(fh, { ino, fsFh: r.fh ?? 0n, mode: 'passthrough' });
        return [encodeOpenOut(fh, FOPEN_PASSTHROUGH, backingId)];
      }
    }
    // Before the reply: the kernel sends READs only after it, and the reader must know the source then.
    this.offerFastReads(ino);
    if (r.directIo) {
      this.files.set(fh, { ino, fsFh: r.fh ?? 0n, mode: 'direct' });
      return [encodeOpenOut(fh, FOPEN_DIRECT_IO, 0)];
    }
    io.cachedOpens++;
    this.files.set(fh, { ino, fsFh: r.fh ?? 0n, mode: 'cached' });
    return [encodeOpenOut(fh, r.keepCache === false ? 0 : FOPEN_KEEP_CACHE, 0)];
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
      const id = fuseBackingOpen(this.fd, fd);
      if (id < 0) {
        this.log.warn({ path, errno: -id }, 'FUSE_DEV_IOC_BACKING_OPEN failed; serving reads instead');
        return undefined;
      }
      return id;
    } finally {
      closeSync(fd); // the kernel holds its own reference
    }
  }

  /** Hands the reader the inode's FastReadSource, once per inode (an open made by a previous session included). */
  private offerFastReads(ino: number): void {
    if (!this.options.fastReads || this.fastOffered.has(ino)) return;
    this.fastOffered.add(ino);
    const source = this.fs.fastReadSource?.(ino);
    if (source) this.reader.addSource(ino, source);
  }

  private async read(ino: number, body: Buffer, ctx: RequestContext): Promise<Buffer[]> {
    const r = decodeReadIn(body);
    this.offerFastReads(ino);
    const file = this.files.get(r.fh);
    const data = await this.fs.read(ino, file?.fsFh ?? 0n, r.offset, r.size, ctx);
    this.counters.reads++;
    this.counters.bytesRead += Math.min(data.length, r.size);
    return [data.length > r.size ? data.subarray(0, r.size) : data];
  }

  private async release(fh: bigint): Promise<Buffer[]> {
    const file = this.files.get(fh);
    if (!file) return []; // opened by a previous session on this connection
    this.files.delete(fh);
    const io = this.inodeIo.get(file.ino);
    if (io) {
      if (file.mode === 'cached') io.cachedOpens--;
      if (file.mode === 'passthrough' && --io.passthroughOpens === 0 && io.backingId !== undefined) {
        const r = fuseBackingClose(this.fd, io.backingId);
        if (r < 0) this.log.warn({ backingId: io.backingId, errno: -r }, 'FUSE_DEV_IOC_BACKING_CLOSE failed');
        io.backingId = undefined;
      }
      if (io.cachedOpens === 0 && io.passthroughOpens === 0) this.inodeIo.delete(file.ino);
    }
    await this.fs.release?.(file.ino, file.fsFh);
    return [];
  }

  private opendir(ino: number): Buffer[] {
    const fh = this.nextFh++;
    this.dirs.set(fh, { ino });
    return [encodeOpenOut(fh, FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE, 0)];
  }

  private async readdir(ino: number, body: Buffer, ctx: RequestContext): Promise<Buffer[]> {
    const r = decodeReadIn(body);
    let dir = this.dirs.get(r.fh);
    if (!dir) {
      dir = { ino };
      this.dirs.set(r.fh, dir);
    }
    if (!dir.entries || r.offset === 0) dir.entries = await this.fs.readdir(ino, ctx);
    const out = Buffer.alloc(r.size);
    let used = 0;
    for (let i = r.offset; i < dir.entries.length; i++) {
      const e = dir.entries[i]!;
      const name = Buffer.from(e.name);
      if (used + direntSize(name.length) > r.size) break;
      used += writeDirent(out, used, e.ino, i + 1, direntType(e.mode), name);
    }
    return [out.subarray(0, used)];
  }

  private async readlink(ino: number, ctx: RequestContext): Promise<Buffer[]> {
    if (!this.fs.readlink) throw new OndemandError('EFUSE', 'not a symlink', { ino }, { errno: EINVAL });
    return [Buffer.from(await this.fs.readlink(ino, ctx))];
  }

  private async getxattr(ino: number, body: Buffer, ctx: RequestContext): Promise<Buffer[]> {
    if (!this.fs.getxattr) throw new OndemandError('EFUSE', 'no xattrs', { ino }, { errno: ENOSYS });
    const { size, name } = decodeGetxattrIn(body);
    return sizedReply(await this.fs.getxattr(ino, name, ctx), size);
  }

  private async listxattr(ino: number, body: Buffer, ctx: RequestContext): Promise<Buffer[]> {
    if (!this.fs.listxattr) throw new OndemandError('EFUSE', 'no xattrs', { ino }, { errno: ENOSYS });
    const names = await this.fs.listxattr(ino, ctx);
    const size = body.readUInt32LE(0);
    return sizedReply(Buffer.from(names.map((n) => `${n}\0`).join('')), size);
  }

  // ---- replies -----------------------------------------------------------------------------------

  private reply(unique: bigint, error: number, payload: Buffer[]): void {
    if (this.detached) return;
    const len = OUT_HEADER_SIZE + payload.reduce((n, b) => n + b.length, 0);
    try {
      writevSync(this.fd, [encodeOutHeader(len, error, unique), ...payload]);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOENT: the request was interrupted and is gone. ENODEV: the connection went away.
      if (code !== 'ENOENT' && code !== 'ENODEV') {
        this.log.warn({ unique: String(unique), error, len, err: String(err) }, 'FUSE reply failed');
      }
    }
  }
}

/** getxattr/listxattr protocol: size 0 asks for the length; a too small buffer is ERANGE. */
function sizedReply(data: Buffer, size: number): Buffer[] {
  if (size === 0) return [encodeGetxattrOut(data.length)];
  if (data.length > size) throw new OndemandError('EFUSE', 'xattr buffer too small', {}, { errno: ERANGE });
  return [data];
}

/** The errno to send the kernel for a thrown value. */
export function errnoOf(err: unknown): number {
  if (err instanceof OndemandError) return err.errno;
  if (typeof err === 'object' && err !== null && 'errno' in err) {
    const n = (err as { errno: unknown }).errno;
    if (typeof n === 'number' && n !== 0) return Math.abs(n);
  }
  return EIO;
}
