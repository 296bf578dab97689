/**
 * One FUSE connection: takes requests from the reader thread, dispatches them, writes replies.
 *
 * - Requests are handled concurrently (a slow READ never holds up a LOOKUP); INTERRUPT aborts the
 *   request's signal, and the reply to an interrupted request may fail with ENOENT (ignored).
 *   What each request asks the filesystem is in requests.ts; handles and passthrough in open-files.ts.
 * - Fast reads: on OPEN (or the first READ of an inode opened by a previous session) the filesystem's
 *   FastReadSource goes to the reader thread, which then answers the READs it can from the local file
 *   itself (reader.ts); the rest still come here.
 * - A session can be created on an already mounted, already initialised connection (a supervisor
 *   keeping the fd across worker restarts): pass the `params` INIT settled and INIT is skipped.
 *   Requests the previous server read but never answered are asked back with FUSE_NOTIFY_RESEND.
 *   Backing ids registered by a previous session are unknown here; they die with the connection (and
 *   a new passthrough open of an inode the old session left open with one fails in the kernel: EBUSY).
 */
import { writevSync } from 'node:fs';
import { logFor, type Logger } from '../util/log.js';
import { OndemandError } from '../util/errors.js';
import { withTimeout } from '../util/with-timeout.js';
import { EINTR, ENODEV, ENOENT, ENOSYS, errnoOf } from './errno.js';
import { abortFuseConnection, connectionGone, connectionWaiting, mountDevice } from './connection.js';
import { answerInit } from './init.js';
import {
  IN_HEADER_SIZE, NotifyCode, OUT_HEADER_SIZE, Opcode, decodeBatchForgetIn, decodeForgetIn, decodeInHeader, decodeInitIn,
  decodeInterruptIn, encodeInitOut, encodeOutHeader,
} from './layout.js';
import { OpenFiles } from './open-files.js';
import { FuseReader } from './reader.js';
import { Requests } from './requests.js';
import { readerOptions, sessionSettings, type FuseSessionOptions, type SessionSettings } from './session-options.js';
import type { FuseConnectionParams, FuseFilesystem, FuseSessionStats, RequestContext } from './types.js';

/** How long an unmount waits for the kernel to end the connection (endedAfterUnmount). */
const CONNECTION_END_MS = 2_000;
/** How long more when the kernel has dropped the connection but the reader has not seen it yet (a loaded host). */
const CONNECTION_END_LATE_MS = 10_000;

export { errnoOf } from './errno.js';
export type { FuseSessionOptions } from './session-options.js';

export class FuseSession {
  readonly fd: number;
  private readonly fs: FuseFilesystem;
  private readonly settings: SessionSettings;
  private readonly log: Logger;
  private connection?: FuseConnectionParams;
  private readonly reader: FuseReader;
  private readonly requests: Requests;
  private readonly inFlight = new Map<bigint, AbortController>();
  private readonly counters: FuseSessionStats = {
    requests: 0, reads: 0, bytesRead: 0, opens: 0, passthroughOpens: 0, interrupts: 0, errors: 0, unsupported: 0, inFlight: 0,
  };
  private readyWaiters: { resolve: (p: FuseConnectionParams) => void; reject: (e: Error) => void }[] = [];
  private endErrno: number | undefined;
  /** After stop(): a successor owns the connection, this session writes nothing more. */
  private detached = false;
  private readonly ended: Promise<number>;
  /** `major:minor` of the mounted connection (its fusectl entry is named by the minor), once known. */
  private device: string | undefined;
  private readonly mountPath: string | undefined;

  private constructor(fd: number, fs: FuseFilesystem, options: FuseSessionOptions) {
    this.fd = fd;
    this.fs = fs;
    this.log = logFor({ fuse: options.name ?? `fd${fd}` });
    this.settings = sessionSettings({ readdirPlus: fs.readdirPlus === true, ...options });
    this.connection = options.params;
    let resolveEnded!: (errno: number) => void;
    this.ended = new Promise((resolve) => { resolveEnded = resolve; });
    this.reader = new FuseReader(fd, readerOptions(this.settings, options.params, fs.threadTree?.()), {
      onRequest: (req) => this.dispatch(req),
      onServed: (ino, offset, length) => fs.servedOnThread?.(ino, offset, length),
      onEnd: (errno) => {
        this.endErrno = errno;
        for (const c of this.inFlight.values()) c.abort();
        const err = new OndemandError('EFUSE', `FUSE connection ended before INIT (errno ${errno})`, {}, { errno: ENODEV });
        for (const w of this.readyWaiters) w.reject(err);
        this.readyWaiters = [];
        resolveEnded(errno);
      },
    });
    const files = new OpenFiles(fd, this.log);
    this.requests = new Requests(fs, this.settings, files, this.reader, this.counters, () => this.connection?.passthrough === true);
    this.mountPath = options.mountPath;
    if (options.params) this.noteDevice();
    if (options.params && options.resend !== false && !this.resendPending()) this.endIfRequestsLost(options.mountPath);
  }

  /** Reads the mounted connection's device while it is mounted (the mount(2) returned before INIT is answered). */
  private noteDevice(): void {
    if (this.mountPath === undefined || this.device !== undefined) return;
    try {
      this.device = mountDevice(this.mountPath);
    } catch { /* not (or no longer) mounted there */ }
  }

  /**
   * A kernel without FUSE_NOTIFY_RESEND keeps the requests a dead server had read in its processing
   * queue for good: their readers would hang. If requests are waiting, end the connection so they
   * fail (ENOTCONN) instead; an idle connection is kept.
   */
  private endIfRequestsLost(mountPath: string | undefined): void {
    if (mountPath === undefined) return;
    let device: string;
    try {
      device = mountDevice(mountPath);
    } catch {
      return;
    }
    const waiting = connectionWaiting(device);
    if (waiting === 0) {
      this.log.info({ mountPath }, 'kernel cannot resend requests (FUSE_NOTIFY_RESEND is 6.9+), but none were waiting: serving on');
      return;
    }
    this.log.error({ mountPath, waiting }, 'kernel cannot resend the requests the previous server held (FUSE_NOTIFY_RESEND is 6.9+): ending the connection so its readers get an error instead of hanging');
    abortFuseConnection(device);
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

  /**
   * After its mount is unmade the kernel ends an unused connection at once (the reader sees ENODEV):
   * waiting for that keeps a stop from racing the kernel's end. False (logged) when the connection is
   * still in use after CONNECTION_END_MS: a busy mount detached lazily, or a copy of the mount in a
   * mount namespace made with private propagation while it existed; the caller cuts it off. When the
   * kernel has dropped the connection (its fusectl entry is gone) and only the reader is late to see
   * it, the wait goes on (bounded).
   */
  async endedAfterUnmount(mountpoint: string): Promise<boolean> {
    const started = Date.now();
    const ended = await withTimeout(this.ended, CONNECTION_END_MS, 'FUSE connection still in use').catch(() => undefined);
    if (ended !== undefined) return true;
    const dropped = this.device !== undefined && connectionGone(this.device) === true;
    if (dropped) {
      const late = await withTimeout(this.ended, CONNECTION_END_LATE_MS, 'FUSE reader did not see the end').catch(() => undefined);
      this.log.warn({ mountpoint, device: this.device, ms: Date.now() - started, seen: late !== undefined },
        'the kernel dropped the FUSE connection, but its reader saw the end late');
      if (late !== undefined) return true;
    }
    this.log.warn({ mountpoint, device: this.device, dropped },
      'FUSE connection still in use after unmount (a busy mount detached lazily, or a copy in another mount namespace): cutting it off');
    return false;
  }

  stats(): FuseSessionStats {
    const fast = this.reader.served();
    return {
      ...this.counters, inFlight: this.inFlight.size, requests: this.counters.requests + fast.metadata,
      reads: this.counters.reads + fast.reads, bytesRead: this.counters.bytesRead + fast.bytes, fastReads: fast.reads, threadMetadata: fast.metadata,
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

  private dispatch(req: Buffer): void {
    if (this.detached) return; // the successor gets it again (FUSE_NOTIFY_RESEND)
    const h = decodeInHeader(req);
    const body = req.subarray(IN_HEADER_SIZE, h.len);
    this.counters.requests++;
    switch (h.opcode) {
      case Opcode.INIT:
        this.init(h.unique, body);
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
      result = Promise.resolve(this.requests.handle(h, body, ctx));
    } catch (err) {
      result = Promise.reject(err instanceof Error ? err : new Error(String(err)));
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

  private init(unique: bigint, body: Buffer): void {
    const k = decodeInitIn(body);
    const { error, reply, params } = answerInit(k, this.settings);
    if (params) this.connection = params;
    this.reply(unique, error, reply ? [encodeInitOut(reply)] : []);
    if (!params) return; // the kernel retries with our major, or gives up
    this.noteDevice();
    this.log.debug({ kernelMinor: k.minor, flags: k.flags, flags2: k.flags2, passthrough: params.passthrough }, 'FUSE INIT');
    for (const w of this.readyWaiters) w.resolve(params);
    this.readyWaiters = [];
  }

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
