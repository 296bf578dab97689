/**
 * The /dev/cachefiles device server: answers the kernel's OPEN/READ/CLOSE requests for erofs-over-fscache
 * mounts from FscacheSources (bootstrap files and CachedBlobs). transport.ts drives it.
 *
 * Waiting: an edge-triggered epoll (EPOLLIN|EPOLLET) whose epoll_wait runs on the libuv pool with a
 * 500 ms timeout; after every wake-up the main thread drains read() until it returns 0. Kernels before
 * 6.8 / 6.1.100 keep the device readable while any request is unanswered; edge triggering reports only
 * new wake-ups (a queued request, a copen), so nothing spins on any version.
 *
 * The mount must never run on this (main) thread: mount(2) waits for the bootstrap OPEN and READ, so it
 * runs on the libuv pool or in another process. The device fd is opened and bound elsewhere (the kernel
 * broker); `FscacheServer.adopt` takes over one a dead process served, with `restore`.
 */
import { closeSync, promises as fsp, readSync, write as fsWrite } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ioctlInt } from '../../native/libc.js';
import {
  allocAligned, epollCreate1, epollCtl, epollEvent, epollWait, lastErrno,
  EPOLLET, EPOLLIN, EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_EVENT_SIZE, type AlignedBuffer,
} from '../../native/cachefiles.js';
import { logFor } from '../../util/log.js';
import { CacheError, UnsupportedError, errorText, systemCode } from '../../util/errors.js';
import { deviceCommand, tryRestore } from './device.js';
import {
  CACHEFILES_IOC_READ_COMPLETE, CACHEFILES_OP_CLOSE, CACHEFILES_OP_OPEN, copenCommand, parseMessage,
  type OpenMessage, type ReadMessage,
} from './messages.js';
import { copyEnsured, type FscacheSource } from './source.js';

const PAGE = 4096;
/** Largest single pwrite into the anon fd; READs bigger than this are written in pieces from `off` upward. */
const CHUNK = 1 << 20;
const WAIT_TIMEOUT_MS = 500;
const ENOENT = 2;

const writeAsync = promisify(fsWrite);

/** One erofs image as the kernel will ask for it. */
export interface FscacheImage {
  fsid: string;
  /** Shared volume: blobs with the same tag are opened and cached once for the whole domain. */
  domainId?: string;
  bootstrap: FscacheSource;
  /** In device-table order; `tag` is what the mount passes as `device=` (or the slot tag). */
  blobs: { tag: string; source: FscacheSource }[];
}

export interface FscacheStats {
  opens: number;
  opensRefused: number;
  closes: number;
  reads: number;
  readErrors: number;
  /** READs for an object this process never opened (e.g. after a restart without restore). */
  readsUnknownObject: number;
  bytesWritten: number;
  openObjects: number;
  readsInFlight: number;
  wakeups: number;
  emptyWakeups: number;
}

interface ObjectState {
  objectId: number;
  fd: number;
  source: FscacheSource;
  key: string;
  inflight: number;
  closed: boolean;
  file?: Promise<FileHandle>;
}

export class FscacheServer {
  private readonly log = logFor({ transport: 'fscache' });
  /** `<volume key>\0<cookie key>` → source; refcounted because images in one domain share blob tags. */
  private readonly sources = new Map<string, { source: FscacheSource; refs: number }>();
  private readonly objects = new Map<number, ObjectState>();
  private readonly msgBuf = Buffer.alloc(8192);
  private readonly freeBuffers: AlignedBuffer[] = [];
  private epfd = -1;
  private events: AlignedBuffer | undefined;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly counters: Omit<FscacheStats, 'openObjects' | 'readsInFlight'> = {
    opens: 0, opensRefused: 0, closes: 0, reads: 0, readErrors: 0, readsUnknownObject: 0, bytesWritten: 0, wakeups: 0, emptyWakeups: 0,
  };
  private inflightTotal = 0;

  private constructor(
    /** The /dev/cachefiles fd; pass it to a holder process to survive a crash. */
    readonly deviceFd: number,
    /** Whether the kernel has `restore` (failover). */
    readonly restoreSupported: boolean,
  ) {}

  /**
   * Takes over an already bound device fd (from a holder process) and writes `restore`, so requests a
   * dead daemon had read are delivered again. Throws UnsupportedError where the kernel cannot restore.
   */
  static adopt(deviceFd: number): FscacheServer {
    if (!tryRestore(deviceFd)) {
      throw new UnsupportedError('this kernel has no cachefiles "restore": requests read by the previous daemon are lost; unmount and remount instead');
    }
    return new FscacheServer(deviceFd, true);
  }

  /**
   * Serves a device fd that someone else opened and bound (a supervisor: openDevice + bindOndemand),
   * on first start, when nothing is in flight yet. After a crash use `adopt` instead.
   */
  static fromBoundFd(deviceFd: number, restoreSupported: boolean): FscacheServer {
    return new FscacheServer(deviceFd, restoreSupported);
  }

  /** Makes an image's bootstrap and blobs answerable. Returns the unregister function. */
  register(image: FscacheImage): () => void {
    const volume = `erofs,${image.domainId ?? image.fsid}`;
    const keys: string[] = [];
    const add = (cookie: string, source: FscacheSource): void => {
      const key = `${volume}\0${cookie}`;
      const entry = this.sources.get(key);
      if (entry === undefined) this.sources.set(key, { source, refs: 1 });
      else entry.refs++;
      keys.push(key);
    };
    add(image.fsid, image.bootstrap);
    for (const blob of image.blobs) add(blob.tag, blob.source);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const key of keys) {
        const entry = this.sources.get(key);
        if (entry !== undefined && --entry.refs === 0) this.sources.delete(key);
      }
    };
  }

  /** Starts serving. Returns at once; requests are answered on this thread's event loop. */
  start(): void {
    if (this.running) return;
    this.epfd = epollCreate1(EPOLL_CLOEXEC);
    if (this.epfd < 0) throw new CacheError(`epoll_create1 failed: errno ${lastErrno()}`);
    if (epollCtl(this.epfd, EPOLL_CTL_ADD, this.deviceFd, epollEvent(EPOLLIN | EPOLLET, 1n)) < 0) {
      throw new CacheError(`epoll_ctl(/dev/cachefiles) failed: errno ${lastErrno()}`);
    }
    this.events = allocAligned(EPOLL_EVENT_SIZE * 4, 64);
    this.running = true;
    this.drain();
    this.loopDone = this.waitLoop();
  }

  stats(): FscacheStats {
    return { ...this.counters, openObjects: this.objects.size, readsInFlight: this.inflightTotal };
  }

  /**
   * Stops serving and closes every anon fd. `keepDevice` leaves the /dev/cachefiles fd open (a holder
   * owns a copy); otherwise it is closed, which kills the cache: pending reads then fail with EIO.
   */
  async close(opts: { keepDevice?: boolean } = {}): Promise<void> {
    this.running = false;
    await this.loopDone;
    for (const obj of this.objects.values()) this.closeObject(obj);
    this.objects.clear();
    if (this.epfd >= 0) closeSync(this.epfd);
    this.epfd = -1;
    this.events?.release();
    this.events = undefined;
    for (const b of this.freeBuffers.splice(0)) b.release();
    if (!opts.keepDevice) closeSync(this.deviceFd);
  }

  private async waitLoop(): Promise<void> {
    const events = this.events;
    if (events === undefined) return;
    while (this.running) {
      const n = await new Promise<number>((resolve) => {
        epollWait.async(this.epfd, events.ptr, 4, WAIT_TIMEOUT_MS, (err, res) => resolve(err === null || err === undefined ? res : -1));
      });
      if (!this.running) break;
      if (n < 0) {
        const e = lastErrno();
        if (e !== 4 /* EINTR */) {
          this.log.warn({ errno: e }, 'epoll_wait on /dev/cachefiles failed');
          await new Promise((r) => setTimeout(r, 100));
        }
        continue;
      }
      if (n > 0) this.drain();
    }
  }

  /** Reads until the kernel has nothing new (read() returns 0; it never blocks). */
  private drain(): void {
    this.counters.wakeups++;
    let handled = 0;
    for (;;) {
      let n: number;
      try {
        n = readSync(this.deviceFd, this.msgBuf, 0, this.msgBuf.length, null);
      } catch (err) {
        const code = systemCode(err);
        if (code === 'EAGAIN' || code === 'EINTR') break;
        this.log.error({ err: errorText(err) }, 'read(/dev/cachefiles) failed');
        break;
      }
      if (n === 0) break;
      handled++;
      try {
        const msg = parseMessage(this.msgBuf, n);
        if (msg.opcode === CACHEFILES_OP_OPEN) this.onOpen(msg);
        else if (msg.opcode === CACHEFILES_OP_CLOSE) this.onClose(msg.objectId);
        else this.onRead(msg);
      } catch (err) {
        this.log.error({ err: errorText(err) }, 'bad cachefiles message');
      }
    }
    if (handled === 0) this.counters.emptyWakeups++;
  }

  private onOpen(msg: OpenMessage): void {
    const key = `${msg.volumeKey}\0${msg.cookieKey}`;
    const source = this.sources.get(key)?.source;
    const log = this.log.child({ volume: msg.volumeKey, cookie: msg.cookieKey, objectId: msg.objectId });
    if (source === undefined) {
      this.counters.opensRefused++;
      log.warn('OPEN for an unregistered image or blob: refused with ENOENT');
      this.reply(copenCommand(msg.msgId, -ENOENT));
      closeSync(msg.fd);
      return;
    }
    const old = this.objects.get(msg.objectId);
    if (old !== undefined) this.releaseObject(old);
    const obj: ObjectState = { objectId: msg.objectId, fd: msg.fd, source, key, inflight: 0, closed: false };
    this.objects.set(msg.objectId, obj);
    if (!this.reply(copenCommand(msg.msgId, source.size))) {
      this.releaseObject(obj);
      return;
    }
    this.counters.opens++;
    log.debug({ size: source.size, fd: msg.fd }, 'OPEN answered');
  }

  private onClose(objectId: number): void {
    const obj = this.objects.get(objectId);
    if (obj === undefined) return; // CLOSE may be re-delivered after restore
    this.counters.closes++;
    this.releaseObject(obj);
  }

  private onRead(msg: ReadMessage): void {
    this.counters.reads++;
    const obj = this.objects.get(msg.objectId);
    if (obj === undefined || obj.closed) {
      // Without the object's anon fd there is nothing to complete on (newer kernels require the same object).
      this.counters.readsUnknownObject++;
      this.log.warn({ objectId: msg.objectId, msgId: msg.msgId }, 'READ for an object this daemon does not hold');
      return;
    }
    obj.inflight++;
    this.inflightTotal++;
    void this.serveRead(obj, msg).finally(() => {
      obj.inflight--;
      this.inflightTotal--;
      if (obj.closed && obj.inflight === 0) this.closeObject(obj);
    });
  }

  /**
   * Writes [off, off+len) (clamped to the object, padded to whole pages) into the anon fd from page-aligned
   * memory at page-aligned offsets, then completes. On failure completes anyway: the kernel finds the hole
   * and the reader gets EIO, never wrong bytes.
   */
  private async serveRead(obj: ObjectState, msg: ReadMessage): Promise<void> {
    const log = this.log.child({ objectId: obj.objectId, offset: msg.offset, length: msg.length });
    try {
      if (msg.offset % PAGE !== 0) throw new CacheError('READ offset not page-aligned', { offset: msg.offset });
      const end = Math.min(msg.offset + msg.length, obj.source.size);
      if (end > msg.offset) {
        await copyEnsured(obj.source, msg.offset, end - msg.offset, () => this.copyToAnonFd(obj, msg.offset, end));
      }
    } catch (err) {
      this.counters.readErrors++;
      log.warn({ err: errorText(err) }, 'READ failed: completing without data (reader gets EIO)');
    }
    // Even when CLOSE arrived meanwhile the fd stays open until this READ returns, so completing is safe.
    if (ioctlInt(obj.fd, CACHEFILES_IOC_READ_COMPLETE, msg.msgId) < 0) {
      log.warn({ errno: lastErrno(), msgId: msg.msgId }, 'READ_COMPLETE ioctl failed');
    }
  }

  /** Copies [offset, end) of the source's file into the anon fd (under copyEnsured's lease). */
  private async copyToAnonFd(obj: ObjectState, offset: number, end: number): Promise<void> {
    obj.file ??= fsp.open(obj.source.dataPath, 'r');
    const file = await obj.file;
    for (let pos = offset; pos < end; pos += CHUNK) {
      const n = Math.min(CHUNK, end - pos);
      const padded = Math.ceil(n / PAGE) * PAGE;
      const buf = this.takeBuffer();
      try {
        let got = 0;
        while (got < n) {
          const r = await file.read(buf.buffer, got, n - got, pos + got);
          if (r.bytesRead === 0) break;
          got += r.bytesRead;
        }
        if (got < n) throw new CacheError('source shorter than its size', { path: obj.source.dataPath, offset: pos + got });
        buf.buffer.fill(0, n, padded);
        if (obj.closed) throw new CacheError('object closed while reading');
        const { bytesWritten: written } = await writeAsync(obj.fd, buf.buffer, 0, padded, pos);
        if (written !== padded) throw new CacheError(`short write to the anon fd: ${written} of ${padded}`, { offset: pos });
        this.counters.bytesWritten += padded;
      } finally {
        this.giveBuffer(buf);
      }
    }
  }

  private reply(command: string): boolean {
    try {
      deviceCommand(this.deviceFd, command);
      return true;
    } catch (err) {
      this.log.warn({ command, err: errorText(err) }, 'cachefiles refused a reply');
      return false;
    }
  }

  /** Forget the object now; its fd closes once no READ is using it. */
  private releaseObject(obj: ObjectState): void {
    if (this.objects.get(obj.objectId) === obj) this.objects.delete(obj.objectId);
    if (obj.closed) return;
    obj.closed = true;
    if (obj.inflight === 0) this.closeObject(obj);
  }

  private closeObject(obj: ObjectState): void {
    obj.closed = true;
    if (obj.fd >= 0) {
      try {
        closeSync(obj.fd);
      } catch {
        // already closed
      }
      obj.fd = -1;
    }
    const file = obj.file;
    obj.file = undefined;
    if (file !== undefined) void file.then((f) => f.close()).catch(() => undefined);
  }

  private takeBuffer(): AlignedBuffer {
    return this.freeBuffers.pop() ?? allocAligned(CHUNK, PAGE);
  }

  private giveBuffer(b: AlignedBuffer): void {
    if (this.freeBuffers.length < 8) this.freeBuffers.push(b);
    else b.release();
  }
}
