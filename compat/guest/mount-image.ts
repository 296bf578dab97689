/**
 * How the compat guest mounts an image: the daemon's steps without a daemon. The image is resolved
 * (an OCI layout, or a plain bootstrap with its blob files read by the local fetcher), its bootstrap and
 * pinned blobs come from the product's cache backend, and the product's transport mounts it through an
 * in-process kernel broker. Every step pushes its undo on the mount's stack; `unwind()` unmounts.
 */
import { join } from 'node:path';
import type { Cache } from '../../src/cache/backend.js';
import type { CachedBlob } from '../../src/cache/types.js';
import type { BlobFetcher } from '../../src/fetch/types.js';
import { settleFetches } from '../../src/mount/manager.js';
import { MS_NODEV, MS_RDONLY } from '../../src/native/libc.js';
import { resolveImage, type ResolvedImage } from '../../src/resolve/index.js';
import { transportFor } from '../../src/transport/index.js';
import type { KernelBroker, KernelObject } from '../../src/transport/kernel-broker.js';
import type { Features } from '../../src/transport/kernel-features.js';
import { unmakeObject } from '../../src/transport/kernel-objects.js';
import type { ActiveTransport, MountMode, TransportContext } from '../../src/transport/types.js';

export interface ImageSpec {
  /** Mount id: part of the fscache fsid, so a restarted server must be given the same one. */
  id: string;
  /** `oci:PATH[:TAG]` or a plain erofs bootstrap file. */
  ref: string;
  /** A plain bootstrap's blob files, in device-table order. */
  blobFiles: string[];
}

/** A product transport, or `local`: the erofs bootstrap and blob files on loop devices (no ondemand). */
export type GuestMode = MountMode | 'local';

export interface GuestMountOptions {
  cache: Cache;
  kernel: KernelBroker;
  features: Features;
  /** Where private FUSE mounts are made (fuse-blobs). */
  privateRoot: string;
  /** Delay every range fetch (a slow registry: reads stay in flight long enough to kill the server). */
  fetchDelayMs?: number;
}

/** Range fetches of `inner`, each `ms` late. */
function slowed(inner: BlobFetcher, ms: number): BlobFetcher {
  return {
    source: `${inner.source} (+${ms} ms a range)`,
    fetchRange: async (digest, range, options) => {
      await new Promise((r) => setTimeout(r, ms));
      return inner.fetchRange(digest, range, options);
    },
    fetchBlob: (digest, options) => inner.fetchBlob(digest, options),
    close: () => inner.close(),
  };
}

/** What MountManager.prepare does: bootstrap in the cache, every blob opened and pinned. */
async function prepare(spec: ImageSpec, opts: GuestMountOptions): Promise<{ bootstrapPath: string; blobs: CachedBlob[] }> {
  const undo = opts.kernel.undo;
  const resolved: ResolvedImage = await resolveImage(spec.ref, spec.blobFiles.length > 0 ? { blobs: spec.blobFiles } : {});
  const fetcher = opts.fetchDelayMs ? slowed(resolved.fetcher, opts.fetchDelayMs) : resolved.fetcher;
  undo.push(`fetcher for ${spec.ref}`, () => fetcher.close());
  const bootstrapPath = await opts.cache.bootstrapPath(resolved.image.bootstrap.uncompressedDigest, () => resolved.loadBootstrap());
  const blobs: CachedBlob[] = [];
  for (const descriptor of resolved.image.blobs) {
    const blob = await opts.cache.openBlob(descriptor, { fetcher, toc: await resolved.loadToc(descriptor), image: spec.ref });
    undo.push(`pin of blob ${descriptor.digest}`, blob.pin());
    blobs.push(blob);
  }
  undo.push(`in-flight fetches of ${spec.ref}`, () => settleFetches(blobs, spec.ref));
  return { bootstrapPath, blobs };
}

function context(spec: ImageSpec, mountpoint: string, opts: GuestMountOptions, prepared: { bootstrapPath: string; blobs: CachedBlob[] }): TransportContext {
  return {
    id: spec.id, mountpoint, image: spec.ref, ...prepared,
    kernel: opts.kernel, features: opts.features, privateDir: join(opts.privateRoot, spec.id), prefetch: false, allowDevices: false,
  };
}

/** The local baseline: the cache's complete files on read-only loop devices, mounted by the broker. */
async function mountLocal(mountpoint: string, kernel: KernelBroker, prepared: { bootstrapPath: string; blobs: CachedBlob[] }): Promise<void> {
  await Promise.all(prepared.blobs.map((b) => b.prefetch()));
  const boot = await kernel.attachLoop(prepared.bootstrapPath);
  const devices: string[] = [];
  for (const b of prepared.blobs) devices.push(await kernel.attachLoop(b.dataPath));
  await kernel.mount(boot, mountpoint, 'erofs', MS_RDONLY | MS_NODEV, devices.map((d) => `device=${d}`).join(','));
}

/** Mounts `spec` at `mountpoint`; returns the transport serving it (null for `local`). */
export async function mountImage(spec: ImageSpec, mountpoint: string, mode: GuestMode, opts: GuestMountOptions): Promise<ActiveTransport | null> {
  const prepared = await prepare(spec, opts);
  if (mode === 'local') {
    await mountLocal(mountpoint, opts.kernel, prepared);
    return null;
  }
  const transport = transportFor(mode);
  if (!transport) throw new Error(`no ${mode} transport`);
  return transport.mount(context(spec, mountpoint, opts, prepared));
}

/**
 * Serves again an erofs-over-fscache mount a killed server made (its /dev/cachefiles fd adopted). The
 * mount is unmade on unwind with the same function as the broker's, since this process did not make it.
 */
export async function reattachImage(spec: ImageSpec, mountpoint: string, opts: GuestMountOptions): Promise<ActiveTransport> {
  const mount: KernelObject = { kind: 'mount', target: mountpoint, fstype: 'erofs' };
  const transport = transportFor('fscache');
  if (!transport?.reattach) throw new Error('the fscache transport cannot re-attach');
  const active = await transport.reattach(context(spec, mountpoint, opts, await prepare(spec, opts)), [mount]);
  // Last on the stack: unmounted before the registration and the pins go.
  opts.kernel.undo.push(`erofs mount at ${mountpoint}`, async () => { await unmakeObject(mount); });
  return active;
}
