/**
 * Stores a built image in an OCI image layout: blobs moved in place, bootstrap gzipped, config,
 * manifest, and the tag in index.json. `buildDirectoryToLayout` is `ondemand build`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import { createHash } from 'node:crypto';
import { MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_ONDEMAND_BOOTSTRAP } from '../format/image/media-types.js';
import { makeManifest, manifestBytes } from '../format/image/manifest.js';
import type { StartupTrace } from '../format/image/trace.js';
import type { BootstrapDescriptor } from '../format/image/types.js';
import { hostPlatform } from '../registry/platform.js';
import { buildImage, type BuildOptions, type BuildResult, type BuildStats } from './builder.js';
import { scanDirectory } from './scan-dir.js';
import { initLayout, putBlobBytes, putBlobFile, tagManifest } from './write-layout.js';

const gzip = promisify(gzipCb);

export interface LayoutImageSummary {
  layout: string;
  tag: string;
  manifestDigest: string;
  manifestSize: number;
  chunkSize: number;
  bootstrap: { digest: string; size: number; uncompressedSize: number };
  blobs: { digest: string; size: number; blobId: string; uncompressedSize: number; frames: number; compression: string }[];
  stats: BuildStats;
}

export interface StoreOptions {
  /** The source image's config (bytes stored unchanged); default a minimal config made here. */
  config?: { bytes: Buffer; mediaType: string };
  sourceImage?: string;
  /** A start-up trace the image carries (manifest annotation). */
  prefetchTrace?: StartupTrace;
}

/** A minimal valid OCI image config: rootfs.diff_ids = the uncompressed digest of each layer. */
export function minimalConfig(diffIds: string[]): Buffer {
  const { os, architecture } = hostPlatform();
  return Buffer.from(JSON.stringify({ architecture, os, config: {}, rootfs: { type: 'layers', diff_ids: diffIds } }));
}

export async function storeInLayout(built: BuildResult, layout: string, tag: string, options: StoreOptions = {}): Promise<LayoutImageSummary> {
  await initLayout(layout);
  for (const b of built.blobs) await putBlobFile(layout, b.path, b.descriptor.digest);
  const gz = await gzip(built.bootstrap, { level: 9 });
  const stored = await putBlobBytes(layout, gz, MEDIA_TYPE_ONDEMAND_BOOTSTRAP);
  const bootstrap: BootstrapDescriptor = {
    digest: stored.digest,
    size: stored.size,
    uncompressedDigest: 'sha256:' + createHash('sha256').update(built.bootstrap).digest('hex'),
    uncompressedSize: built.bootstrap.length,
  };
  const blobs = built.blobs.map((b) => b.descriptor);
  const configBytes = options.config?.bytes ?? minimalConfig([...blobs.map((b) => b.digest), bootstrap.uncompressedDigest]);
  const config = await putBlobBytes(layout, configBytes, options.config?.mediaType ?? MEDIA_TYPE_OCI_CONFIG);
  const manifest = makeManifest({
    config, blobs, bootstrap, chunkSize: built.chunkSize,
    ...(options.sourceImage !== undefined ? { sourceImage: options.sourceImage } : {}),
    ...(options.prefetchTrace !== undefined ? { prefetchTrace: options.prefetchTrace } : {}),
  });
  const mdesc = await putBlobBytes(layout, manifestBytes(manifest), MEDIA_TYPE_OCI_MANIFEST);
  await tagManifest(layout, mdesc, tag);
  return {
    layout,
    tag,
    manifestDigest: mdesc.digest,
    manifestSize: mdesc.size,
    chunkSize: built.chunkSize,
    bootstrap: { digest: bootstrap.digest, size: bootstrap.size, uncompressedSize: bootstrap.uncompressedSize },
    blobs: built.blobs.map((b) => ({
      digest: b.descriptor.digest, size: b.descriptor.size, blobId: b.descriptor.blobId,
      uncompressedSize: b.descriptor.uncompressedSize, frames: b.toc.frames.length, compression: b.descriptor.compression,
    })),
    stats: built.stats,
  };
}

/** `ondemand build SRC_DIR oci:LAYOUT[:TAG]`. */
export async function buildDirectoryToLayout(
  srcDir: string, layout: string, tag: string, options: Omit<BuildOptions, 'workDir' | 'blobCount'> & Pick<StoreOptions, 'prefetchTrace'> = {},
): Promise<LayoutImageSummary> {
  const { root } = scanDirectory(srcDir); // before touching the destination: a bad source leaves nothing behind
  await initLayout(layout);
  const workDir = await mkdtemp(join(layout, '.ondemand-build-'));
  try {
    const { prefetchTrace, ...build } = options;
    const built = await buildImage(root, { ...build, workDir });
    return await storeInLayout(built, layout, tag, prefetchTrace !== undefined ? { prefetchTrace } : {});
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
