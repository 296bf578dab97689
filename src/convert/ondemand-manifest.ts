/**
 * Packing a built image for output: the gzip bootstrap and the ondemand manifest (made by
 * src/format/image/manifest.ts) whose config is the source's, unchanged.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { bootstrapLayer, makeManifest, manifestBytes, type OciDescriptor } from '../format/image/manifest.js';
import type { StartupTrace } from '../format/image/trace.js';
import type { BlobDescriptor, BootstrapDescriptor } from '../format/image/types.js';
import type { Descriptor } from '../registry/manifest.js';

export type { OciDescriptor };

export interface PackedBootstrap {
  /** The gzip bytes as stored. */
  stored: Buffer;
  descriptor: OciDescriptor;
  info: BootstrapDescriptor;
}

export function sha256(bytes: Buffer): string {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex');
}

export function packBootstrap(bootstrap: Buffer): PackedBootstrap {
  const stored = gzipSync(bootstrap, { level: 6 });
  const info: BootstrapDescriptor = { digest: sha256(stored), size: stored.length, uncompressedDigest: sha256(bootstrap), uncompressedSize: bootstrap.length };
  return { stored, info, descriptor: bootstrapLayer(info) };
}

export function ondemandManifestBytes(
  config: Descriptor, blobs: BlobDescriptor[], bootstrap: PackedBootstrap, chunkSize: number, sourceDigest: string, prefetchTrace?: StartupTrace,
): Buffer {
  return manifestBytes(makeManifest({
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    blobs,
    bootstrap: bootstrap.info,
    chunkSize,
    sourceImage: sourceDigest,
    ...(prefetchTrace !== undefined ? { prefetchTrace } : {}),
  }));
}
