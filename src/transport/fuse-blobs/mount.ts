/**
 * One image through fuse-blobs: a private FUSE mount showing the bootstrap and blob files, and the
 * kernel's erofs mounted read-only on top of it. `mount` unwinds everything it made if a step fails;
 * `unmount` undoes it in reverse (erofs, then FUSE).
 */
import { FuseMount, type FuseMountOptions } from '../../fuse/mount.js';
import type { FuseSessionStats } from '../../fuse/types.js';
import type { CachedBlob } from '../../cache/types.js';
import { logFor } from '../../util/log.js';
import { FuseBlobsFilesystem, type FuseBlobsStats } from './filesystem.js';
import { erofsReadAheadFor, mountErofsOverFuseBlobs, unmountErofs, type ErofsArrangement, type ErofsMount } from './erofs-mount.js';

export interface FuseBlobsMountOptions {
  /** The erofs mountpoint the user sees. */
  target: string;
  /** An empty private directory for the FUSE mount (e.g. /run/ondemand/fuse/<id>). */
  fuseDir: string;
  /** Local uncompressed bootstrap (from CacheBackend.bootstrapPath). */
  bootstrapPath: string;
  /** Blobs in erofs device-table order. */
  blobs: readonly CachedBlob[];
  image?: string;
  /** Negotiate FUSE passthrough (used for complete blobs). Default true. */
  passthrough?: boolean;
  arrangement?: ErofsArrangement;
  loopDirectIo?: boolean;
  /** See FuseBlobsOptions.blobDirectIo. */
  blobDirectIo?: boolean;
  /** See FuseBlobsOptions.pageCacheComplete. */
  pageCacheComplete?: boolean;
  /** Mount erofs with `directio` (file-backed: it reads the blob files with O_DIRECT). */
  erofsDirectIo?: boolean;
  /** read_ahead_kb of the erofs mount (file-backed arrangement); default erofsReadAheadFor(). */
  erofsReadAheadKb?: number;
  fuse?: Omit<FuseMountOptions, 'passthrough'>;
}

export interface FuseBlobsMountStats {
  fuse: FuseSessionStats;
  blobs: FuseBlobsStats;
  passthroughNegotiated: boolean;
}

export class FuseBlobsMount {
  private constructor(
    readonly fuse: FuseMount,
    readonly fs: FuseBlobsFilesystem,
    readonly erofs: ErofsMount,
  ) {}

  static async mount(o: FuseBlobsMountOptions): Promise<FuseBlobsMount> {
    const fs = new FuseBlobsFilesystem({
      bootstrapPath: o.bootstrapPath, blobs: o.blobs, passthrough: o.passthrough ?? true, image: o.image,
      blobDirectIo: o.blobDirectIo,
      pageCacheComplete: o.pageCacheComplete,
    });
    let fuse: FuseMount | undefined;
    try {
      fuse = await FuseMount.create(o.fuseDir, fs, { ...o.fuse, passthrough: o.passthrough ?? true, source: o.fuse?.source ?? 'ondemand-blobs' });
      const erofs = await mountErofsOverFuseBlobs({
        fuseDir: o.fuseDir,
        fusePassthrough: fuse.params?.passthrough ?? false,
        bootstrapPath: o.bootstrapPath,
        blobNames: fs.blobNames(),
        target: o.target,
        arrangement: o.arrangement,
        loopDirectIo: o.loopDirectIo,
        directIo: o.erofsDirectIo,
        readAheadKb: o.erofsReadAheadKb ?? erofsReadAheadFor(o.blobs),
      });
      logFor({ image: o.image, mountpoint: o.target }).info({ arrangement: erofs.arrangement, primary: erofs.primary, passthrough: fuse.params?.passthrough }, 'erofs mounted over fuse-blobs');
      return new FuseBlobsMount(fuse, fs, erofs);
    } catch (err) {
      if (fuse) await fuse.unmount({ lazy: true }).catch(() => undefined);
      await fs.close().catch(() => undefined);
      throw err;
    }
  }

  stats(): FuseBlobsMountStats {
    return { fuse: this.fuse.session.stats(), blobs: this.fs.stats(), passthroughNegotiated: this.fuse.params?.passthrough ?? false };
  }

  /** erofs first (it holds the FUSE files open), then FUSE. `lazy` detaches busy mounts. */
  async unmount(options: { lazy?: boolean } = {}): Promise<void> {
    await unmountErofs(this.erofs, options);
    await this.fuse.unmount(options);
    await this.fs.close();
  }
}
