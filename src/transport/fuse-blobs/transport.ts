/**
 * The fuse-blobs transport as orchestration drives it: a private FUSE mount whose /dev/fuse fd the
 * supervisor owns (this worker serves a pidfd_getfd duplicate) showing src/transport/fuse-blobs'
 * filesystem (`bootstrap` and one file per blob), erofs mounted read-only on top by the supervisor.
 *
 * Arrangement (measured on 6.18): file-backed
 * erofs; with passthrough negotiated the primary is the local bootstrap file (erofs refuses a primary
 * on a stacked fs) and the blobs are FUSE files — complete blobs are opened with passthrough at mount
 * time. Blobs with holes are opened FOPEN_DIRECT_IO: with a page cache of their own, the kernel's
 * readahead on them ran on past the file being read into its neighbours' frames, by how much depending
 * on timing (the reason a second mount of the same image used to fetch a frame the first did not).
 * (erofs's own `directio` option did the same but also made passthrough reads O_DIRECT on the cache
 * file: disk reads every time.) erofs's readahead is raised instead when a blob has holes, so
 * sequential reads keep whole frames in flight. Without passthrough, complete blobs are opened cached:
 * nothing is left to fetch, and their FUSE page cache keeps warm reads in the kernel.
 * Loop devices instead for kernels without file-backed erofs, and for `--prefetch` mounts: their blob
 * files were opened before being complete, so when prefetch ends the read-only loops are switched to
 * the complete cache files (LOOP_CHANGE_FD) and reads no longer involve this process.
 */
import { closeSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FuseSession } from '../../fuse/session.js';
import { mountDevice, setReadAhead } from '../../fuse/mount.js';
import type { FuseConnectionParams } from '../../fuse/types.js';
import { MS_NODEV, MS_RDONLY } from '../../native/libc.js';
import { MountError, errorText } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { failPoint } from '../fail-point.js';
import type { KernelObject } from '../kernel-broker.js';
import type { ActiveTransport, Transport, TransportContext } from '../types.js';
import { erofsReadAheadFor, withErofsReadAhead } from './erofs-mount.js';
import { BOOTSTRAP_NAME, FuseBlobsFilesystem } from './filesystem.js';

const INIT_TIMEOUT_MS = 10_000;
const FUSE_NOTIFY_RESEND = 7;
/** read_ahead_kb of the private FUSE mount: 1 MiB READs instead of 128 KiB ones. */
const FUSE_READ_AHEAD_KB = 1024;

function isParams(v: unknown): v is FuseConnectionParams {
  return typeof v === 'object' && v !== null && typeof (v as FuseConnectionParams).minor === 'number' && typeof (v as FuseConnectionParams).passthrough === 'boolean';
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new MountError(what)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

class ServedBlobs implements ActiveTransport {
  /** Loop device of each blob (device-table order) when erofs sits on loops; empty when file-backed. */
  blobLoops: string[] = [];
  private direct = 0;

  constructor(private readonly ctx: TransportContext, private readonly session: FuseSession, private readonly fs: FuseBlobsFilesystem, private readonly fd: number) {}

  stats(): { requests: number; passthroughOpens: number; blobsDirect: number } {
    const s = this.session.stats();
    return { requests: s.requests, passthroughOpens: s.passthroughOpens, blobsDirect: this.direct };
  }

  /**
   * A blob's loop device opened its FUSE file before the blob was complete, so that open can never
   * become a passthrough one (the kernel forbids mixing on an inode). Instead the read-only loop is
   * switched to the complete, pinned cache file itself: same bytes, no userspace on reads.
   */
  async blobsComplete(): Promise<void> {
    for (const [i, device] of this.blobLoops.entries()) {
      const blob = this.ctx.blobs[i];
      if (!blob || !blob.isComplete()) continue;
      await this.ctx.kernel.swapLoop(device, blob.dataPath);
      this.direct += 1;
    }
  }

  async stop(): Promise<void> {
    await this.session.stop().catch(() => undefined);
    closeSync(this.fd);
    await this.fs.close();
  }
}

/** Pushes the "stop serving" step; it runs after the kernel objects made later are unmade. */
function holder(ctx: TransportContext): { set: (s: ServedBlobs) => void } {
  let served: ServedBlobs | null = null;
  ctx.kernel.undo.push('FUSE session', async () => { if (served) await served.stop(); });
  return { set: (s) => { served = s; } };
}

async function mountErofs(ctx: TransportContext, fs: FuseBlobsFilesystem, passthrough: boolean): Promise<string[]> {
  const fuseBootstrap = join(ctx.privateDir, BOOTSTRAP_NAME);
  const blobFiles = fs.blobNames().map((n) => join(ctx.privateDir, n));
  const useLoops = ctx.prefetch || !ctx.features.erofsFileBacked.supported;
  if (!useLoops) {
    failPoint('before-erofs-mount');
    const primary = passthrough ? ctx.bootstrapPath : fuseBootstrap;
    const devices = blobFiles.map((f) => `device=${f}`).join(',');
    await withErofsReadAhead(ctx.mountpoint, erofsReadAheadFor(ctx.blobs),
      () => ctx.kernel.mount(primary, ctx.mountpoint, 'erofs', MS_RDONLY | MS_NODEV, devices));
    return [];
  }
  const bootDev = await ctx.kernel.attachLoop(fuseBootstrap);
  const blobDevs: string[] = [];
  for (const f of blobFiles) blobDevs.push(await ctx.kernel.attachLoop(f));
  failPoint('before-erofs-mount');
  await ctx.kernel.mount(bootDev, ctx.mountpoint, 'erofs', MS_RDONLY | MS_NODEV, blobDevs.map((d) => `device=${d}`).join(','));
  return blobDevs;
}

export const fuseBlobsTransport: Transport = {
  mode: 'fuse-blobs',

  async mount(ctx: TransportContext): Promise<ActiveTransport> {
    const passthrough = ctx.features.fusePassthrough.supported;
    const fs = new FuseBlobsFilesystem({ bootstrapPath: ctx.bootstrapPath, blobs: ctx.blobs, passthrough, image: ctx.image });
    await ctx.kernel.mkdir(ctx.privateDir);
    const slot = holder(ctx);
    const fd = await ctx.kernel.openFuse(ctx.privateDir, 'ondemand', 'default_permissions');
    const session = FuseSession.start(fd, fs, { name: ctx.privateDir, passthrough });
    const served = new ServedBlobs(ctx, session, fs, fd);
    slot.set(served);
    const params = await withTimeout(session.ready(), INIT_TIMEOUT_MS, `FUSE INIT did not arrive at ${ctx.privateDir}`);
    await ctx.kernel.saveFuseParams(ctx.privateDir, params);
    setReadAhead(mountDevice(ctx.privateDir), FUSE_READ_AHEAD_KB);
    served.blobLoops = await mountErofs(ctx, fs, params.passthrough);
    return served;
  },

  async reattach(ctx: TransportContext, objects: readonly KernelObject[]): Promise<ActiveTransport> {
    const fuse = objects.find((o) => o.kind === 'fuse');
    if (!fuse || fuse.kind !== 'fuse' || !isParams(fuse.params)) throw new MountError(`no live FUSE connection recorded for ${ctx.mountpoint}`, { mountpoint: ctx.mountpoint });
    const passthrough = fuse.params.passthrough;
    const fs = new FuseBlobsFilesystem({ bootstrapPath: ctx.bootstrapPath, blobs: ctx.blobs, passthrough, image: ctx.image });
    const slot = holder(ctx);
    const fd = ctx.kernel.adoptFd(fuse.fd);
    const session = FuseSession.fromFd(fd, fs, fuse.params, { name: fuse.path, passthrough });
    const served = new ServedBlobs(ctx, session, fs, fd);
    // Loops were made bootstrap first, then one per blob (see mountErofs).
    served.blobLoops = objects.flatMap((o) => (o.kind === 'loop' ? [o.device] : [])).slice(1);
    slot.set(served);
    // Requests the dead worker had read but not answered sit in the kernel's processing queue:
    // FUSE_NOTIFY_RESEND (kernel >= 6.9) puts them back on the pending queue for us.
    try {
      const hdr = Buffer.alloc(16);
      hdr.writeUInt32LE(16, 0);
      hdr.writeInt32LE(FUSE_NOTIFY_RESEND, 4);
      writeSync(fd, hdr);
    } catch (err) {
      log.warn({ mountpoint: ctx.mountpoint, err: errorText(err) }, 'FUSE_NOTIFY_RESEND failed: requests read by the dead worker stay unanswered');
    }
    return served;
  },
};
