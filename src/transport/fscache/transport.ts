/**
 * The fscache transport as orchestration drives it: erofs mounted with `fsid=`/`domain_id=`/`device=`
 * over cachefiles on-demand. The supervisor opens /dev/cachefiles and binds it once (one opener per
 * host, the cache dir is `<daemon cache dir>/fscache`, which must be ext4/xfs) and keeps the fd across
 * worker crashes; this worker serves a pidfd_getfd duplicate for every fscache mount. mount(2) runs in
 * the supervisor, so it never blocks the thread serving the device. Blob cookies share the `ondemand`
 * domain, so images with common blobs share their cache objects.
 */
import { basename } from 'node:path';
import { MS_NODEV, MS_RDONLY } from '../../native/libc.js';
import { MountError, errorText } from '../../util/errors.js';
import { log } from '../../util/log.js';
import type { KernelBroker, KernelObject } from '../kernel-broker.js';
import type { ActiveTransport, Transport, TransportContext } from '../types.js';
import { fscacheMountData } from './mount.js';
import { FscacheTransport } from './server.js';
import { blobSource, localFileSource } from './source.js';

const DOMAIN = 'ondemand';

/** One device per worker process, shared by all fscache mounts; started on first use. */
let device: Promise<FscacheTransport> | null = null;
/**
 * After a worker restart, `restore` re-delivers OPENs and READs for every re-attached image at once; an
 * OPEN read before its image is registered again would be refused and its mount would fail with EIO.
 * So while re-attaching, the adopted device is not read until every image is registered.
 */
let heldBack: FscacheTransport | null = null;

function serving(kernel: KernelBroker, holdBack = false): Promise<FscacheTransport> {
  device ??= (async () => {
    const { fd, restoreSupported, fresh } = await kernel.openCachefiles();
    let t: FscacheTransport;
    if (fresh) {
      t = FscacheTransport.fromBoundFd(fd, restoreSupported);
    } else if (restoreSupported) {
      // A previous worker served this fd: `restore` re-delivers the requests it had read.
      t = FscacheTransport.adopt(fd);
    } else {
      log.warn('cachefiles has no "restore" here: requests the previous worker had read stay unanswered (reads fail with EIO)');
      t = FscacheTransport.fromBoundFd(fd, false);
    }
    if (holdBack && !fresh) heldBack = t;
    else t.start();
    return t;
  })().catch((err: unknown) => {
    device = null;
    throw err;
  });
  return device;
}

/** fsid from the bootstrap's cache file name (its digest): the same image gets the same cookie. */
export function fsidFor(bootstrapPath: string): string {
  const hex = basename(bootstrapPath).replace(/[^0-9a-f]/gi, '').slice(-16);
  if (hex.length < 8) throw new MountError(`cannot derive an fsid from ${bootstrapPath}`, { path: bootstrapPath });
  return `ondemand-${hex}`;
}

class ServedImage implements ActiveTransport {
  constructor(private readonly transport: FscacheTransport, private readonly unregister: () => void) {}

  stats(): { requests: number } {
    const s = this.transport.stats();
    return { requests: s.opens + s.reads + s.closes };
  }

  async stop(): Promise<void> {
    // The device stays served for the other mounts (and CLOSEs of a lazily detached one).
    this.unregister();
  }
}

async function register(ctx: TransportContext, holdBack = false): Promise<{ served: ServedImage; data: string }> {
  const transport = await serving(ctx.kernel, holdBack);
  const fsid = fsidFor(ctx.bootstrapPath);
  const tags = ctx.blobs.map((b) => b.blobId);
  const data = fscacheMountData({ fsid, domainId: DOMAIN, devices: tags });
  const unregister = transport.register({
    fsid,
    domainId: DOMAIN,
    bootstrap: await localFileSource(ctx.bootstrapPath),
    blobs: ctx.blobs.map((b) => ({ tag: b.blobId, source: blobSource(b) })),
  });
  const served = new ServedImage(transport, unregister);
  // Pushed before the mount: it runs after the umount (the stack unwinds last-in first).
  ctx.kernel.undo.push(`fscache registration of ${fsid}`, () => served.stop());
  return { served, data };
}

export const fscacheTransport: Transport = {
  mode: 'fscache',

  async mount(ctx: TransportContext): Promise<ActiveTransport> {
    const { served, data } = await register(ctx);
    try {
      await ctx.kernel.mount('none', ctx.mountpoint, 'erofs', MS_RDONLY | MS_NODEV, data);
    } catch (err) {
      throw new MountError(`erofs over fscache at ${ctx.mountpoint} (${data}): ${errorText(err)}`, { mountpoint: ctx.mountpoint, image: ctx.image }, { cause: err });
    }
    return served;
  },

  async reattach(ctx: TransportContext, objects: readonly KernelObject[]): Promise<ActiveTransport> {
    if (!objects.some((o) => o.kind === 'mount')) throw new MountError(`no erofs mount recorded for ${ctx.mountpoint}`, { mountpoint: ctx.mountpoint });
    const { served } = await register(ctx, true);
    return served;
  },

  reattachDone(): void {
    heldBack?.start();
    heldBack = null;
  },
};
