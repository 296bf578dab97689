/**
 * The fuse-tree transport: the whole image served over FUSE at the mountpoint itself, from our own
 * erofs reader (filesystem.ts), for kernels whose erofs cannot mount our images (before 5.16: no
 * chunk-based files or extra devices) and for users who may not mount erofs. No kernel erofs, no loop
 * devices: one FUSE connection, whose fd the supervisor owns (this worker serves a duplicate).
 *
 * Mounted read-only, with `default_permissions` (the kernel checks mode bits) and, for a daemon run
 * by root, `allow_other` (containers run as any user). The image is immutable, so names, attributes
 * and pages are cached by the kernel for as long as it likes (FOPEN_KEEP_CACHE, long timeouts).
 */
import { closeSync } from 'node:fs';
import { FuseSession, type FuseSessionOptions } from '../../fuse/session.js';
import { mountDevice, setReadAhead } from '../../fuse/connection.js';
import { keepSpareReaderThreads } from '../../fuse/reader.js';
import type { FuseConnectionParams, FuseSessionStats } from '../../fuse/types.js';
import { MS_NODEV, MS_RDONLY } from '../../native/libc.js';
import { MountError } from '../../util/errors.js';
import { withTimeout } from '../../util/with-timeout.js';
import { failPoint } from '../fail-point.js';
import type { KernelObject } from '../kernel-broker.js';
import type { ActiveTransport, Transport, TransportContext, TransportStats } from '../types.js';
import { FuseTreeFilesystem, type FuseTreeStats } from './filesystem.js';

const INIT_TIMEOUT_MS = 10_000;
/** Reader-side helper threads for READs that arrive while another is served (FuseSessionOptions.readerCopyThreads). */
const COPY_THREADS = 3;
/** read_ahead_kb of the mount: 1 MiB READs for sequential readers instead of 128 KiB ones. */
const READ_AHEAD_KB = 1024;

export interface FuseTreeTransportStats extends TransportStats {
  requests: number;
  connection: FuseConnectionParams | undefined;
  session: FuseSessionStats;
  files: FuseTreeStats;
}

export interface ActiveFuseTree extends ActiveTransport {
  stats(): FuseTreeTransportStats;
  /** The reader's end: 19 (ENODEV) when the kernel ended the connection, 0 when stopped first. */
  whenEnded(): Promise<number>;
}

export interface FuseTreeTransport extends Transport {
  mount(ctx: TransportContext): Promise<ActiveFuseTree>;
  reattach(ctx: TransportContext, objects: readonly KernelObject[]): Promise<ActiveFuseTree>;
}

function isParams(v: unknown): v is FuseConnectionParams {
  return typeof v === 'object' && v !== null && typeof (v as FuseConnectionParams).minor === 'number' && typeof (v as FuseConnectionParams).passthrough === 'boolean';
}

/** The FUSE mount options: who may use it is the kernel's business (mode bits), and everyone may when root serves it. */
export function fuseTreeMountOptions(isRoot = process.getuid?.() === 0): string {
  return isRoot ? 'default_permissions,allow_other' : 'default_permissions';
}

/** mount(2) flags: read-only; nodev unless device nodes are allowed (an image is untrusted). Set-id bits work as on erofs. */
export function fuseTreeMountFlags(allowDevices: boolean): number {
  return MS_RDONLY | (allowDevices ? 0 : MS_NODEV);
}

class ServedTree implements ActiveFuseTree {
  private stopped?: Promise<void>;

  constructor(private readonly ctx: TransportContext, private readonly session: FuseSession, private readonly fs: FuseTreeFilesystem, private readonly fd: number) {}

  stats(): FuseTreeTransportStats {
    const s = this.session.stats();
    return { requests: s.requests, connection: this.session.params, session: s, files: this.fs.stats() };
  }

  whenEnded(): Promise<number> {
    return this.session.whenEnded();
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      await this.session.stop().catch(() => undefined);
      closeSync(this.fd);
      this.fs.close();
    })();
    return this.stopped;
  }

  /** After the mount is unmade: the kernel's end of the connection awaited (bounded), then the stop. */
  async unmounted(): Promise<void> {
    await this.session.endedAfterUnmount(this.ctx.mountpoint);
    await this.stop();
  }
}

/** The "stop serving" step goes on the undo stack first: it runs after the FUSE mount is unmade. */
function holder(ctx: TransportContext): { set: (s: ServedTree) => void } {
  let served: ServedTree | null = null;
  ctx.kernel.undo.push('FUSE session', async () => { if (served) await served.unmounted(); });
  return { set: (s) => { served = s; } };
}

function sessionOptions(ctx: TransportContext): Omit<FuseSessionOptions, 'params'> {
  const r = ctx.fuseReader;
  return {
    name: ctx.mountpoint, mountPath: ctx.mountpoint, passthrough: false,
    // Page-cache misses of several readers wait for the disk side by side (random 4 KiB READs, 4 jobs).
    readerCopyThreads: r?.copyThreads ?? COPY_THREADS,
    readerCopyMinBytes: Number.POSITIVE_INFINITY,
    ...(r?.threadMetadata !== undefined ? { threadMetadata: r.threadMetadata } : {}),
    ...(r?.spliceMinBytes !== undefined ? { readerSpliceMinBytes: r.spliceMinBytes } : {}),
  };
}

function filesystem(ctx: TransportContext): FuseTreeFilesystem {
  return new FuseTreeFilesystem({ bootstrapPath: ctx.bootstrapPath, blobs: ctx.blobs, image: ctx.image });
}

export const fuseTreeTransport: FuseTreeTransport = {
  mode: 'fuse-tree',

  prepare(): void {
    keepSpareReaderThreads(COPY_THREADS);
  },

  async mount(ctx: TransportContext): Promise<ActiveFuseTree> {
    const fs = filesystem(ctx);
    let served: ServedTree | undefined;
    try {
      const slot = holder(ctx);
      failPoint('before-erofs-mount');
      const fd = await ctx.kernel.openFuse(ctx.mountpoint, 'ondemand', fuseTreeMountOptions(), fuseTreeMountFlags(ctx.allowDevices));
      const session = FuseSession.start(fd, fs, sessionOptions(ctx));
      served = new ServedTree(ctx, session, fs, fd);
      slot.set(served);
      const params = await withTimeout(session.ready(), INIT_TIMEOUT_MS, `FUSE INIT did not arrive at ${ctx.mountpoint}`);
      await ctx.kernel.saveFuseParams(ctx.mountpoint, params);
      setReadAhead(mountDevice(ctx.mountpoint), READ_AHEAD_KB);
      return served;
    } catch (err) {
      if (!served) fs.close();
      throw err;
    }
  },

  async reattach(ctx: TransportContext, objects: readonly KernelObject[]): Promise<ActiveFuseTree> {
    const fuse = objects.find((o) => o.kind === 'fuse');
    if (!fuse || fuse.kind !== 'fuse' || !isParams(fuse.params)) throw new MountError(`no live FUSE connection recorded for ${ctx.mountpoint}`, { mountpoint: ctx.mountpoint });
    const fs = filesystem(ctx);
    const slot = holder(ctx);
    const fd = ctx.kernel.adoptFd(fuse.fd);
    // The session asks the kernel to resend what the dead worker had read but not answered (FUSE_NOTIFY_RESEND).
    const session = FuseSession.fromFd(fd, fs, fuse.params, sessionOptions(ctx));
    const served = new ServedTree(ctx, session, fs, fd);
    slot.set(served);
    return served;
  },
};

