/**
 * The fscache transport as orchestration drives it: erofs mounted with `fsid=`/`domain_id=`/`device=`
 * over cachefiles on-demand. The supervisor opens /dev/cachefiles and binds it once (one opener per
 * host, the cache dir is `<daemon cache dir>/fscache`, which must be ext4/xfs) and keeps the fd across
 * worker crashes; this worker serves a pidfd_getfd duplicate for every fscache mount. mount(2) runs in
 * the supervisor, so it never blocks the thread serving the device. Blob cookies share the `ondemand`
 * domain, so images with common blobs share their cache objects.
 */
import { basename } from 'node:path';
import { erofsMountFlags } from '../kernel-objects.js';
import { MountError, errorText, systemCode } from '../../util/errors.js';
import { log } from '../../util/log.js';
import type { KernelBroker, KernelObject } from '../kernel-broker.js';
import type { ActiveTransport, Transport, TransportContext } from '../types.js';
import { fscacheMountData, fscacheMountHint } from './mount-data.js';
import { FscacheServer } from './server.js';
import { blobSource, localFileSource } from './source.js';

const DOMAIN = 'ondemand';

/** One device per worker process, shared by all fscache mounts; started on first use. */
let device: Promise<FscacheServer> | null = null;
/**
 * After a worker restart, `restore` re-delivers OPENs and READs for every re-attached image at once; an
 * OPEN read before its image is registered again would be refused and its mount would fail with EIO.
 * So while re-attaching, the adopted device is not read until every image is registered.
 */
let heldBack: FscacheServer | null = null;

function serving(kernel: KernelBroker, holdBack: boolean): Promise<FscacheServer> {
  device ??= (async () => {
    const { fd, restoreSupported, fresh } = await kernel.openCachefiles();
    let t: FscacheServer;
    if (fresh) {
      t = FscacheServer.fromBoundFd(fd, restoreSupported);
    } else if (restoreSupported) {
      // A previous worker served this fd: `restore` re-delivers the requests it had read.
      t = FscacheServer.adopt(fd);
    } else {
      log.warn('cachefiles has no "restore" here: requests the previous worker had read stay unanswered (reads fail with EIO)');
      t = FscacheServer.fromBoundFd(fd, false);
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

/**
 * This process's server of /dev/cachefiles (opened through `kernel` and started on first use): tests
 * and the compat guest read its counters. Not before re-attaching, which must hold the device back.
 */
export function deviceServer(kernel: KernelBroker): Promise<FscacheServer> {
  return serving(kernel, false);
}

/**
 * fsid: the image (its bootstrap's digest, from the cache file name) and the mount: a bootstrap cookie
 * must be unique in the domain (EEXIST), and one image may be mounted twice. The mount id survives a
 * worker restart, so a re-attached mount answers to the same fsid.
 */
export function fsidFor(bootstrapPath: string, mountId: string): string {
  const hex = basename(bootstrapPath).replace(/[^0-9a-f]/gi, '').slice(-16);
  if (hex.length < 8) throw new MountError(`cannot derive an fsid from ${bootstrapPath}`, { path: bootstrapPath });
  return `ondemand-${hex}-${mountId}`;
}

class ServedImage implements ActiveTransport {
  constructor(private readonly server: FscacheServer, private readonly unregister: () => void) {}

  stats(): { requests: number } {
    const s = this.server.stats();
    return { requests: s.opens + s.reads + s.closes };
  }

  async stop(): Promise<void> {
    // The device stays served for the other mounts (and CLOSEs of a lazily detached one).
    this.unregister();
  }
}

async function register(ctx: TransportContext, holdBack: boolean): Promise<{ served: ServedImage; data: string }> {
  const server = await serving(ctx.kernel, holdBack);
  const fsid = fsidFor(ctx.bootstrapPath, ctx.id);
  const tags = ctx.blobs.map((b) => b.blobId);
  const data = fscacheMountData({ fsid, domainId: DOMAIN, devices: tags });
  const unregister = server.register({
    fsid,
    domainId: DOMAIN,
    bootstrap: await localFileSource(ctx.bootstrapPath),
    blobs: ctx.blobs.map((b) => ({ tag: b.blobId, source: blobSource(b) })),
  });
  const served = new ServedImage(server, unregister);
  // Pushed before the mount: it runs after the umount (the stack unwinds last-in first).
  ctx.kernel.undo.push(`fscache registration of ${fsid}`, () => served.stop());
  return { served, data };
}

export const fscacheTransport: Transport = {
  mode: 'fscache',

  async mount(ctx: TransportContext): Promise<ActiveTransport> {
    const { served, data } = await register(ctx, false);
    try {
      await ctx.kernel.mount('none', ctx.mountpoint, 'erofs', erofsMountFlags(ctx.allowDevices), data);
    } catch (err) {
      const hint = fscacheMountHint(systemCode(err instanceof Error ? err.cause : undefined));
      throw new MountError(`erofs over fscache at ${ctx.mountpoint} (${data}): ${errorText(err)}${hint ? ` (${hint})` : ''}`, { mountpoint: ctx.mountpoint, image: ctx.image }, { cause: err });
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
