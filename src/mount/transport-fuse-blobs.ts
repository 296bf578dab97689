/**
 * The fuse-blobs transport as orchestration drives it: a private FUSE mount whose /dev/fuse fd the
 * supervisor owns (this worker serves a pidfd_getfd duplicate), showing `bootstrap` and one file per
 * blob; erofs mounted read-only on top — straight from the FUSE files where the kernel can, else
 * through loop devices.
 *
 * Passthrough is negotiated only when every blob is already complete (a warm mount): a passthrough
 * connection makes FUSE a stacked fs, which erofs refuses as a file-backed primary, so such mounts
 * go through loop devices (platform-notes: 6.6 GB/s). Cold mounts stay file-backed without loops.
 */
import { stat } from 'node:fs/promises';
import { closeSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FuseSession } from '../fuse/session.js';
import { mountDevice, setReadAhead } from '../fuse/mount.js';
import type { FuseConnectionParams } from '../fuse/types.js';
import { MS_NODEV, MS_RDONLY } from '../native/libc.js';
import { MountError, errorText } from '../util/errors.js';
import { log } from '../util/log.js';
import type { MountRecord } from '../daemon/protocol.js';
import { BlobsFilesystem } from './blobs-fs.js';
import type { ActiveTransport, Transport, TransportContext } from './transports.js';

const INIT_TIMEOUT_MS = 10_000;
const FUSE_NOTIFY_RESEND = 7;

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
  constructor(private readonly session: FuseSession, private readonly fs: BlobsFilesystem, private readonly fd: number) {}

  stats(): { requests: number; passthroughOpens: number } {
    const s = this.session.stats();
    return { requests: s.requests, passthroughOpens: s.passthroughOpens };
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

async function mountErofs(ctx: TransportContext, passthrough: boolean): Promise<void> {
  const files = BlobsFilesystem.names(ctx.blobs.length).map((n) => join(ctx.privateDir, n));
  const [bootstrap, ...blobFiles] = files as [string, ...string[]];
  const useLoops = passthrough || !ctx.features.erofsFileBacked.supported;
  if (!useLoops) {
    const data = blobFiles.map((f) => `device=${f}`).join(',');
    await ctx.kernel.mount(bootstrap, ctx.mountpoint, 'erofs', MS_RDONLY | MS_NODEV, data);
    return;
  }
  const bootDev = await ctx.kernel.attachLoop(bootstrap);
  const blobDevs: string[] = [];
  for (const f of blobFiles) blobDevs.push(await ctx.kernel.attachLoop(f));
  await ctx.kernel.mount(bootDev, ctx.mountpoint, 'erofs', MS_RDONLY | MS_NODEV, blobDevs.map((d) => `device=${d}`).join(','));
}

export const fuseBlobsTransport: Transport = {
  mode: 'fuse-blobs',

  async mount(ctx: TransportContext): Promise<ActiveTransport> {
    const passthrough = ctx.features.fusePassthrough.supported && ctx.blobs.length > 0 && ctx.blobs.every((b) => b.isComplete());
    const bootstrapSize = (await stat(ctx.bootstrapPath)).size;
    const fs = new BlobsFilesystem(ctx.bootstrapPath, bootstrapSize, ctx.blobs, passthrough);
    await ctx.kernel.mkdir(ctx.privateDir);
    const slot = holder(ctx);
    const fd = await ctx.kernel.openFuse(ctx.privateDir, 'ondemand', 'default_permissions');
    const session = FuseSession.start(fd, fs, { name: ctx.privateDir, passthrough });
    const served = new ServedBlobs(session, fs, fd);
    slot.set(served);
    const params = await withTimeout(session.ready(), INIT_TIMEOUT_MS, `FUSE INIT did not arrive at ${ctx.privateDir}`);
    await ctx.kernel.saveFuseParams(ctx.privateDir, params);
    setReadAhead(mountDevice(ctx.privateDir), 1024);
    await mountErofs(ctx, params.passthrough);
    return served;
  },

  async reattach(ctx: TransportContext, record: MountRecord): Promise<ActiveTransport> {
    const fuse = record.objects.find((o) => o.kind === 'fuse');
    if (!fuse || fuse.kind !== 'fuse' || !isParams(fuse.params)) throw new MountError(`no live FUSE connection recorded for ${record.mountpoint}`);
    const passthrough = fuse.params.passthrough;
    const fs = new BlobsFilesystem(ctx.bootstrapPath, (await stat(ctx.bootstrapPath)).size, ctx.blobs, passthrough);
    const slot = holder(ctx);
    const fd = ctx.kernel.adoptFd(fuse.fd);
    const session = FuseSession.fromFd(fd, fs, fuse.params, { name: fuse.path, passthrough });
    const served = new ServedBlobs(session, fs, fd);
    slot.set(served);
    // Requests the dead worker had read but not answered sit in the kernel's processing queue:
    // FUSE_NOTIFY_RESEND (kernel >= 6.9) puts them back on the pending queue for us.
    try {
      const hdr = Buffer.alloc(16);
      hdr.writeUInt32LE(16, 0);
      hdr.writeInt32LE(FUSE_NOTIFY_RESEND, 4);
      writeSync(fd, hdr);
    } catch (err) {
      log.warn({ mountpoint: record.mountpoint, err: errorText(err) }, 'FUSE_NOTIFY_RESEND failed: requests read by the dead worker stay unanswered');
    }
    return served;
  },
};
