/**
 * The ondemand image manifest for a built image (docs/image-format.md): data-blob layers in erofs
 * device order with their TOC annotations, the gzip bootstrap last, the source config unchanged.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { ANNOTATION, MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_ONDEMAND_BLOB, MEDIA_TYPE_ONDEMAND_BOOTSTRAP } from '../format/image/media-types.js';
import type { BlobDescriptor } from '../format/image/types.js';
import type { Descriptor } from '../registry/manifest.js';

export interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string };
}

export interface PackedBootstrap {
  /** The gzip bytes as stored. */
  stored: Buffer;
  descriptor: OciDescriptor;
}

export function sha256(bytes: Buffer): string {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex');
}

export function packBootstrap(bootstrap: Buffer): PackedBootstrap {
  const stored = gzipSync(bootstrap, { level: 6 });
  return {
    stored,
    descriptor: {
      mediaType: MEDIA_TYPE_ONDEMAND_BOOTSTRAP,
      digest: sha256(stored),
      size: stored.length,
      annotations: { [ANNOTATION.bootstrapDigest]: sha256(bootstrap), [ANNOTATION.bootstrapSize]: String(bootstrap.length) },
    },
  };
}

export function blobLayer(b: BlobDescriptor): OciDescriptor {
  return {
    mediaType: MEDIA_TYPE_ONDEMAND_BLOB,
    digest: b.digest,
    size: b.size,
    annotations: {
      [ANNOTATION.blobId]: b.blobId,
      [ANNOTATION.uncompressedSize]: String(b.uncompressedSize),
      [ANNOTATION.tocOffset]: String(b.tocOffset),
      [ANNOTATION.tocSize]: String(b.tocSize),
      [ANNOTATION.tocDigest]: b.tocDigest,
      [ANNOTATION.compression]: b.compression,
      [ANNOTATION.frameSize]: String(b.frameSize),
    },
  };
}

export function ondemandManifestBytes(config: Descriptor, blobs: BlobDescriptor[], bootstrap: OciDescriptor, chunkSize: number, sourceDigest: string): Buffer {
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: [...blobs.map(blobLayer), bootstrap],
    annotations: { [ANNOTATION.chunkSize]: String(chunkSize), [ANNOTATION.sourceImage]: sourceDigest },
  };
  return Buffer.from(JSON.stringify(manifest));
}
