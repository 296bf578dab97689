/**
 * An ondemand image manifest (docs/image-format.md) → OndemandImage: data-blob layers in erofs
 * device order, the gzip bootstrap layer last, everything a reader needs from annotations.
 */
import { FormatError } from '../util/errors.js';
import { ANNOTATION, MEDIA_TYPE_ONDEMAND_BLOB, MEDIA_TYPE_ONDEMAND_BOOTSTRAP } from '../format/image/media-types.js';
import { COMPRESSIONS, type BlobDescriptor, type BootstrapDescriptor, type Compression, type OndemandImage } from '../format/image/types.js';
import type { Descriptor, ImageManifest } from './manifest.js';

const SHA256 = /^sha256:[a-f0-9]{64}$/;
const HEX64 = /^[a-f0-9]{64}$/;

function annotation(d: Descriptor, key: string, where: string, image: string): string {
  const v = d.annotations?.[key];
  if (v === undefined || v === '') throw new FormatError(`${where} lacks annotation ${key}`, { image, blob: d.digest });
  return v;
}

function integer(d: Descriptor, key: string, where: string, image: string): number {
  const text = annotation(d, key, where, image);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new FormatError(`${where}: annotation ${key} is not a non-negative integer`, { image, blob: d.digest });
  return Number(text);
}

function blobDescriptor(d: Descriptor, index: number, image: string): BlobDescriptor {
  const where = `blob layer ${index}`;
  const blobId = annotation(d, ANNOTATION.blobId, where, image);
  if (!HEX64.test(blobId)) throw new FormatError(`${where}: ${ANNOTATION.blobId} is not 64 hex digits`, { image, blob: d.digest });
  const tocDigest = annotation(d, ANNOTATION.tocDigest, where, image);
  if (!SHA256.test(tocDigest)) throw new FormatError(`${where}: ${ANNOTATION.tocDigest} is not a sha256 digest`, { image, blob: d.digest });
  const compression = annotation(d, ANNOTATION.compression, where, image);
  if (!(COMPRESSIONS as readonly string[]).includes(compression)) {
    throw new FormatError(`${where}: unknown compression "${compression}" (known: ${COMPRESSIONS.join(', ')})`, { image, blob: d.digest });
  }
  const b: BlobDescriptor = {
    digest: d.digest,
    size: d.size,
    blobId,
    uncompressedSize: integer(d, ANNOTATION.uncompressedSize, where, image),
    tocOffset: integer(d, ANNOTATION.tocOffset, where, image),
    tocSize: integer(d, ANNOTATION.tocSize, where, image),
    tocDigest,
    compression: compression as Compression,
    frameSize: integer(d, ANNOTATION.frameSize, where, image),
  };
  if (b.tocOffset + b.tocSize > b.size) throw new FormatError(`${where}: the TOC lies beyond the end of the blob`, { image, blob: d.digest });
  if (b.frameSize <= 0) throw new FormatError(`${where}: frame size is 0`, { image, blob: d.digest });
  return b;
}

function bootstrapDescriptor(d: Descriptor, image: string): BootstrapDescriptor {
  const where = 'bootstrap layer';
  const uncompressedDigest = annotation(d, ANNOTATION.bootstrapDigest, where, image);
  if (!SHA256.test(uncompressedDigest)) throw new FormatError(`${where}: ${ANNOTATION.bootstrapDigest} is not a sha256 digest`, { image });
  return { digest: d.digest, size: d.size, uncompressedDigest, uncompressedSize: integer(d, ANNOTATION.bootstrapSize, where, image) };
}

/** Checks and converts; an ordinary (not converted) image gets a message saying so. */
export function ondemandImageFromManifest(manifest: ImageManifest, manifestDigest: string, ref: string): OndemandImage {
  const layers = manifest.layers;
  const last = layers[layers.length - 1];
  if (last === undefined || last.mediaType !== MEDIA_TYPE_ONDEMAND_BOOTSTRAP) {
    const types = [...new Set(layers.map((l) => l.mediaType))].join(', ') || 'no layers';
    throw new FormatError(`${ref} is not an ondemand image (its layers are ${types}); convert it with \`ondemand convert\``, { image: ref });
  }
  const blobs = layers.slice(0, -1).map((l, i) => {
    if (l.mediaType !== MEDIA_TYPE_ONDEMAND_BLOB) throw new FormatError(`layer ${i} of ${ref} has media type ${l.mediaType}, expected ${MEDIA_TYPE_ONDEMAND_BLOB}`, { image: ref });
    return blobDescriptor(l, i, ref);
  });
  const chunkText = manifest.annotations?.[ANNOTATION.chunkSize];
  const chunkSize = chunkText !== undefined && /^[0-9]+$/.test(chunkText) ? Number(chunkText) : NaN;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 4096 || (chunkSize & (chunkSize - 1)) !== 0) {
    throw new FormatError(`manifest of ${ref}: annotation ${ANNOTATION.chunkSize} must be a power of two >= 4096`, { image: ref });
  }
  return {
    ref,
    manifestDigest,
    chunkSize,
    bootstrap: bootstrapDescriptor(last, ref),
    blobs,
    config: { mediaType: manifest.config.mediaType, digest: manifest.config.digest, size: manifest.config.size },
  };
}
