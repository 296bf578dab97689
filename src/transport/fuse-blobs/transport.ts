/**
 * The fuse-blobs transport as orchestration drives it: a private FUSE mount whose /dev/fuse fd the
 * supervisor owns (this worker serves a pidfd_getfd duplicate) showing src/transport/fuse-blobs'
 * filesystem (`bootstrap` and one file per blob), erofs mounted read-only on top by the supervisor.
 *
 * Arrangement (measured on 6.18): file-backed
 * erofs; with passthrough negotiated the primary is the local bootstrap file (the FUSE superblock then
 * counts as a stacked fs and erofs refuses a primary on it with ENOTBLK, "file-backed mounts cannot be
 * applied to stacked fses", while device= files on it are accepted) and the blobs are FUSE files — complete blobs are opened with passthrough at mount
 * time. Blobs with holes are opened FOPEN_DIRECT_IO: with a page cache of their own, the kernel's
 * readahead on them ran on past the file being read into its neighbours' frames, by how much depending
 * on timing (the reason a second mount of the same image used to fetch a frame the first did not).
 * (erofs's own `directio` option did the same but also made passthrough reads O_DIRECT on the cache
 * file: disk reads every time.) erofs's readahead is raised instead when a blob has holes, so
 * sequential reads keep whole frames in flight. Without passthrough, complete blobs are opened cached:
 * nothing is left to fetch, and their FUSE page cache keeps warm reads in the kernel.
 * Loop devices instead for kernels without file-backed erofs, and for `--prefetch` mounts. A blob
 * complete at mount time gets its loop on the cache file itself; the others on their FUSE files, and
 * when prefetch ends those read-only loops are switched to the complete cache files (LOOP_CHANGE_FD)
 * and reads no longer involve this process. The switch fsyncs the cache file (the loop driver does, on
 * 6.18): a cache flush on the disk, which a mount over a complete cache no longer pays at its first read.
 * A cache file changed by another process while its loop reads it (the cache's tamper watch) sends
 * that loop back to the FUSE file until the blob is verified whole again.
 */
import { closeSync, readFileSync, realpathSync } from 'node:fs';
import { basename, join } from 'node:path';
import { FuseSession, type FuseSessionOptions } from '../../fuse/session.js';
import { mountDevice, setReadAhead } from '../../fuse/connection.js';
import { keepSpareReaderThreads } from '../../fuse/reader.js';
import type { FuseConnectionParams, FuseSessionStats } from '../../fuse/types.js';
import { erofsMountFlags } from '../kernel-objects.js';
import { MountError, errorText } from '../../util/errors.js';
import { EINVAL, errnoOf } from '../../fuse/errno.js';
import { loopChangeFileAsync } from '../../native/loop.js';
import { log } from '../../util/log.js';
import { withTimeout } from '../../util/with-timeout.js';
import { failPoint } from '../fail-point.js';
import type { KernelObject } from '../kernel-broker.js';
import type { ActiveTransport, Transport, TransportContext, TransportStats } from '../types.js';
import { erofsReadAheadFor, withErofsReadAhead } from '../erofs-readahead.js';
import { BOOTSTRAP_NAME, FuseBlobsFilesystem, leaseIfComplete, type FuseBlobsStats } from './filesystem.js';

const INIT_TIMEOUT_MS = 10_000;
/** read_ahead_kb of the private FUSE mount: 1 MiB READs instead of 128 KiB ones. */
export const FUSE_READ_AHEAD_KB = 1024;

function isParams(v: unknown): v is FuseConnectionParams {
  return typeof v === 'object' && v !== null && typeof (v as FuseConnectionParams).minor === 'number' && typeof (v as FuseConnectionParams).passthrough === 'boolean';
}

/** What erofs was mounted on: mount(2)'s source and its device= list (files, or loop devices). */
export interface ErofsDevices {
  source: string;
  devices: string[];
  onLoops: boolean;
}

export interface FuseBlobsTransportStats extends TransportStats {
  requests: number;
  passthroughOpens: number;
  blobsDirect: number;
  /** What INIT settled (undefined before INIT). */
  connection: FuseConnectionParams | undefined;
  session: FuseSessionStats;
  files: FuseBlobsStats;
}

/** A served fuse-blobs mount. */
export interface ActiveFuseBlobs extends ActiveTransport {
  stats(): FuseBlobsTransportStats;
  readonly erofs: ErofsDevices;
  /** The reader's end: 19 (ENODEV) when the kernel ended the connection, 0 when stopped first. */
  whenEnded(): Promise<number>;
}

export interface FuseBlobsTransport extends Transport {
  mount(ctx: TransportContext): Promise<ActiveFuseBlobs>;
  reattach(ctx: TransportContext, objects: readonly KernelObject[]): Promise<ActiveFuseBlobs>;
}

/** Sessions of this process, for what must happen to all of them when the supervisor dies (withdrawDirectLoops). */
const sessions = new Set<ServedBlobs>();

/**
 * The supervisor died (this worker is about to end): every loop device reading a cache file directly
 * goes back to its blob's FUSE file, which fails every read once this process is gone. Left on the
 * cache file, the loop would read it unchecked for as long as the dead mount lives, whoever changes it
 * meanwhile (no daemon watches it any more). The swaps run while this process still serves the FUSE files.
 */
export async function withdrawDirectLoops(): Promise<void> {
  await Promise.all([...sessions].map((s) => s.withdrawDirect()));
}

class ServedBlobs implements ActiveFuseBlobs {
  /** Set once erofs is mounted. */
  erofs: ErofsDevices = { source: '', devices: [], onLoops: false };
  /** Blobs whose loop reads the cache file itself, by index, with the cache lease that keeps the file so. */
  private readonly direct = new Map<number, () => void>();
  /** Per blob with a loop on its cache file once: the tamper listener (ended at stop). */
  private readonly watching = new Map<number, () => void>();
  /** Per blob: changes behind the cache seen so far, and the repair that runs for the last of them. */
  private readonly changes = new Map<number, number>();
  private readonly repairs = new Map<number, Promise<void>>();
  private stopped?: Promise<void>;

  constructor(private readonly ctx: TransportContext, private readonly session: FuseSession, private readonly fs: FuseBlobsFilesystem, private readonly fd: number) {
    sessions.add(this);
  }

  /**
   * Every loop that reads a local file directly back to a plain FUSE open of it, here (withdrawDirectLoops:
   * no supervisor to ask): a blob's loop on its cache file, and the bootstrap's loop, whose FUSE open was
   * a passthrough one (the kernel reads the bootstrap file itself through it).
   */
  async withdrawDirect(): Promise<void> {
    if (!this.erofs.onLoops) return;
    this.fs.endPassthrough();
    const names = this.fs.blobNames();
    const loops: [string | undefined, string | undefined][] = [
      [this.erofs.source, BOOTSTRAP_NAME],
      ...[...this.direct.keys()].map((i): [string | undefined, string | undefined] => [this.erofs.devices[i], names[i]]),
    ];
    await Promise.all(loops.map(async ([device, name]) => {
      if (device === undefined || name === undefined) return;
      try {
        await loopChangeFileAsync(device, join(this.ctx.privateDir, name));
        log.warn({ mountpoint: this.ctx.mountpoint, image: this.ctx.image, device }, 'supervisor gone: a loop device reads its FUSE file again (its reads fail from now on)');
      } catch (err) {
        log.error({ mountpoint: this.ctx.mountpoint, image: this.ctx.image, device, err: errorText(err) }, 'supervisor gone: cannot move a loop device off its cache file');
      }
    }));
  }

  stats(): FuseBlobsTransportStats {
    const s = this.session.stats();
    return {
      requests: s.requests, passthroughOpens: s.passthroughOpens, blobsDirect: this.direct.size,
      connection: this.session.params, session: s, files: this.fs.stats(),
    };
  }

  whenEnded(): Promise<number> {
    return this.session.whenEnded();
  }

  /**
   * The file a loop device for blob `i` is attached to: the cache file itself when the blob is complete
   * now (a lease keeps it so while the session lasts), else its FUSE file.
   */
  async attachBlobLoop(i: number, fuseFile: string): Promise<string> {
    const blob = this.ctx.blobs[i];
    const release = blob ? leaseIfComplete(blob) : undefined;
    if (!blob || !release) return this.ctx.kernel.attachLoop(fuseFile);
    try {
      const device = await this.ctx.kernel.attachLoop(blob.openDataPath ?? blob.dataPath);
      this.holdDirect(i, release);
      return device;
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * After a worker restart: the loops a predecessor attached to (or switched to) the cache files read
   * them directly again, so their blobs are leased again (never evicted under the kernel) and made
   * whole in the background (the new worker may not trust every frame yet: a crash loses bits, not the
   * bytes the kernel reads).
   */
  adoptDirectLoops(): void {
    for (const [i, device] of this.erofs.devices.entries()) {
      const blob = this.ctx.blobs[i];
      if (!blob || !readsFile(device, blob.openDataPath ?? blob.dataPath)) continue;
      this.holdDirect(i, blob.lease?.() ?? (() => undefined));
      blob.ensure(0, blob.size).catch((err: unknown) => log.error({ mountpoint: this.ctx.mountpoint, image: this.ctx.image, blob: blob.blobId, device, err: errorText(err) },
        'a loop device reads a cache file whose frames cannot all be verified'));
    }
  }

  /**
   * A blob's loop device opened its FUSE file before the blob was complete, so that open can never
   * become a passthrough one (the kernel forbids mixing on an inode). Instead the read-only loop is
   * switched to the complete, pinned cache file itself: same bytes, no userspace on reads.
   */
  async blobsComplete(): Promise<void> {
    if (!this.erofs.onLoops) return;
    for (const [i, device] of this.erofs.devices.entries()) await this.readCacheFile(i, device);
  }

  /** Switches blob i's loop to its cache file when the blob is complete (nothing done otherwise). */
  private async readCacheFile(i: number, device: string): Promise<void> {
    const blob = this.ctx.blobs[i];
    if (!blob || this.direct.has(i)) return;
    // Pinned by the mount already; the lease says it where the kernel reads the file, and is taken
    // before the check (isComplete is false while an eviction runs).
    const release = leaseIfComplete(blob);
    if (!release) return;
    try {
      await this.ctx.kernel.swapLoop(device, blob.openDataPath ?? blob.dataPath);
    } catch (err) {
      release();
      throw err;
    }
    this.holdDirect(i, release);
  }

  private holdDirect(i: number, release: () => void): void {
    this.direct.set(i, release);
    if (this.watching.has(i)) return;
    const stopWatching = this.ctx.blobs[i]?.onChangedBehind?.(() => this.changedBehind(i));
    if (stopWatching) this.watching.set(i, stopWatching);
  }

  /**
   * Another process changed blob i's cache file (the cache's tamper watch): a loop reading it would
   * hand the changed bytes to erofs unchecked, so it goes back to the blob's FUSE file, whose reads
   * this process verifies, until every frame is verified (or fetched) again; then back to the cache
   * file, unless the file changed again meanwhile (that change's own repair does it).
   */
  private changedBehind(i: number): void {
    const seen = (this.changes.get(i) ?? 0) + 1;
    this.changes.set(i, seen);
    const repair = (this.repairs.get(i) ?? Promise.resolve()).then(() => this.repair(i, seen));
    this.repairs.set(i, repair);
  }

  private async repair(i: number, seen: number): Promise<void> {
    const blob = this.ctx.blobs[i];
    const device = this.erofs.devices[i];
    const name = this.fs.blobNames()[i];
    if (!blob || device === undefined || name === undefined || this.stopped) return;
    const context = { mountpoint: this.ctx.mountpoint, image: this.ctx.image, blob: blob.blobId, device };
    const release = this.direct.get(i);
    if (release) {
      try {
        await this.ctx.kernel.swapLoop(device, join(this.ctx.privateDir, name));
      } catch (err) {
        log.error({ ...context, err: errorText(err) }, 'cannot move a loop device off a cache file changed behind the cache: it reads the file unchecked');
        return;
      }
      this.direct.delete(i);
      release();
      log.warn(context, 'a loop device reads its blob through FUSE again until the changed cache file is verified');
    }
    try {
      await blob.ensure(0, blob.size);
    } catch (err) {
      log.warn({ ...context, err: errorText(err) }, 'a changed cache file cannot be made whole again: its blob is read through FUSE');
      return;
    }
    if (this.changes.get(i) !== seen || this.stopped) return;
    await this.readCacheFile(i, device).catch((err: unknown) => log.warn({ ...context, err: errorText(err) }, 'switching a repaired blob back to its cache file failed'));
  }

  /** Stops serving and releases the fd (once; the connection itself belongs to the broker's owner). */
  stop(): Promise<void> {
    sessions.delete(this);
    this.stopped ??= (async () => {
      await this.session.stop().catch(() => undefined);
      closeSync(this.fd);
      await this.fs.close();
      for (const stopWatching of this.watching.values()) stopWatching();
      this.watching.clear();
      for (const release of this.direct.values()) release();
      this.direct.clear();
    })();
    return this.stopped;
  }

  /** After the mount is unmade: the kernel's end of the connection awaited (bounded), then the stop. */
  async unmounted(): Promise<void> {
    await this.session.endedAfterUnmount(this.ctx.mountpoint);
    await this.stop();
  }
}

/** Whether loop `device` reads `file` (sysfs names the backing file by its real path). */
function readsFile(device: string, file: string): boolean {
  try {
    return readFileSync(`/sys/block/${basename(device)}/loop/backing_file`, 'utf8').trim() === realpathSync(file);
  } catch {
    return false;
  }
}

/** Pushes the "stop serving" step; it runs after the kernel objects made later are unmade. */
function holder(ctx: TransportContext): { set: (s: ServedBlobs) => void } {
  let served: ServedBlobs | null = null;
  ctx.kernel.undo.push('FUSE session', async () => { if (served) await served.unmounted(); });
  return { set: (s) => { served = s; } };
}

function sessionOptions(ctx: TransportContext, passthrough: boolean): Omit<FuseSessionOptions, 'params'> {
  const r = ctx.fuseReader;
  return {
    name: ctx.privateDir, mountPath: ctx.privateDir, passthrough,
    ...(r?.copyThreads !== undefined ? { readerCopyThreads: r.copyThreads } : {}),
    ...(r?.spliceMinBytes !== undefined ? { readerSpliceMinBytes: r.spliceMinBytes } : {}),
  };
}

/** File-backed erofs: the FUSE files themselves, but the local bootstrap as primary with passthrough (see above). */
function fileBacked(ctx: TransportContext, fs: FuseBlobsFilesystem, passthrough: boolean): ErofsDevices {
  return {
    source: passthrough ? ctx.bootstrapPath : join(ctx.privateDir, BOOTSTRAP_NAME),
    devices: fs.blobNames().map((n) => join(ctx.privateDir, n)),
    onLoops: false,
  };
}

/**
 * Learned from the kernel, once per process: erofs refuses the blob files of a FUSE mount that
 * negotiated passthrough as file-backed devices. Passthrough makes the FUSE mount a stacked
 * filesystem (s_stack_depth 1), and newer kernels (6.18.y since early 2026, and later) refuse
 * file-backed erofs devices on stacked filesystems ("file-backed devices cannot be on stacked fses",
 * EINVAL). Loop devices over the same files are block devices and are taken.
 */
let stackedFilesRefused = false;

async function mountErofs(ctx: TransportContext, fs: FuseBlobsFilesystem, served: ServedBlobs, passthrough: boolean): Promise<ErofsDevices> {
  const useLoops = ctx.prefetch || !ctx.features.erofsFileBacked.supported || (passthrough && stackedFilesRefused);
  if (!useLoops) {
    failPoint('before-erofs-mount');
    const erofs = fileBacked(ctx, fs, passthrough);
    try {
      await withErofsReadAhead(ctx.mountpoint, erofsReadAheadFor(ctx.blobs),
        () => ctx.kernel.mount(erofs.source, ctx.mountpoint, 'erofs', erofsMountFlags(ctx.allowDevices), erofs.devices.map((d) => `device=${d}`).join(',')));
      return erofs;
    } catch (err) {
      if (!passthrough || errnoOf(err) !== EINVAL) throw err;
      stackedFilesRefused = true;
      log.warn({ mountpoint: ctx.mountpoint, image: ctx.image, err: String(err) },
        'erofs refused FUSE passthrough files as file-backed devices (this kernel refuses stacked filesystems there): mounting over loop devices instead');
    }
  }
  const source = await ctx.kernel.attachLoop(join(ctx.privateDir, BOOTSTRAP_NAME));
  const devices: string[] = [];
  for (const [i, n] of fs.blobNames().entries()) devices.push(await served.attachBlobLoop(i, join(ctx.privateDir, n)));
  failPoint('before-erofs-mount');
  await ctx.kernel.mount(source, ctx.mountpoint, 'erofs', erofsMountFlags(ctx.allowDevices), devices.map((d) => `device=${d}`).join(','));
  return { source, devices, onLoops: true };
}

export const fuseBlobsTransport: FuseBlobsTransport = {
  mode: 'fuse-blobs',

  prepare(): void {
    keepSpareReaderThreads(0); // its sessions run no copy threads (sessionOptions)
  },

  async mount(ctx: TransportContext): Promise<ActiveFuseBlobs> {
    const passthrough = ctx.features.fusePassthrough.supported;
    const fs = new FuseBlobsFilesystem({ bootstrapPath: ctx.bootstrapPath, blobs: ctx.blobs, passthrough, image: ctx.image });
    await ctx.kernel.mkdir(ctx.privateDir);
    const slot = holder(ctx);
    const fd = await ctx.kernel.openFuse(ctx.privateDir, 'ondemand', 'default_permissions');
    const session = FuseSession.start(fd, fs, sessionOptions(ctx, passthrough));
    const served = new ServedBlobs(ctx, session, fs, fd);
    slot.set(served);
    const params = await withTimeout(session.ready(), INIT_TIMEOUT_MS, `FUSE INIT did not arrive at ${ctx.privateDir}`);
    await ctx.kernel.saveFuseParams(ctx.privateDir, params);
    setReadAhead(mountDevice(ctx.privateDir), FUSE_READ_AHEAD_KB);
    served.erofs = await mountErofs(ctx, fs, served, params.passthrough);
    return served;
  },

  async reattach(ctx: TransportContext, objects: readonly KernelObject[]): Promise<ActiveFuseBlobs> {
    const fuse = objects.find((o) => o.kind === 'fuse');
    if (!fuse || fuse.kind !== 'fuse' || !isParams(fuse.params)) throw new MountError(`no live FUSE connection recorded for ${ctx.mountpoint}`, { mountpoint: ctx.mountpoint });
    const passthrough = fuse.params.passthrough;
    const fs = new FuseBlobsFilesystem({ bootstrapPath: ctx.bootstrapPath, blobs: ctx.blobs, passthrough, image: ctx.image });
    const slot = holder(ctx);
    const fd = ctx.kernel.adoptFd(fuse.fd);
    // The session asks the kernel to resend what the dead worker had read but not answered (FUSE_NOTIFY_RESEND).
    const session = FuseSession.fromFd(fd, fs, fuse.params, sessionOptions(ctx, passthrough));
    // Loops were made bootstrap first, then one per blob (see mountErofs).
    const [source, ...devices] = objects.flatMap((o) => (o.kind === 'loop' ? [o.device] : []));
    const served = new ServedBlobs(ctx, session, fs, fd);
    served.erofs = source === undefined ? fileBacked(ctx, fs, passthrough) : { source, devices, onLoops: true };
    slot.set(served);
    served.adoptDirectLoops();
    return served;
  },
};
