/**
 * The OCI manifest of an ondemand image: data blobs then the bootstrap as layers, our annotations on
 * each (docs/image-format.md). `parseManifest` checks every field of untrusted input.
 */
import { FormatError } from '../../util/errors.js';
import {
  ANNOTATION, MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_ONDEMAND_BLOB, MEDIA_TYPE_ONDEMAND_BOOTSTRAP,
} from './media-types.js';
import { traceAnnotation, type StartupTrace } from './trace.js';
import { COMPRESSIONS, type BlobDescriptor, type BootstrapDescriptor, type Compression, type OndemandImage } from './types.js';

export interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string };
}

export interface OciManifest {
  schemaVersion: 2;
  mediaType: string;
  config: OciDescriptor;
  layers: OciDescriptor[];
  annotations?: Record<string, string>;
}

export interface ManifestInput {
  config: { mediaType: string; digest: string; size: number };
  blobs: BlobDescriptor[];
  bootstrap: BootstrapDescriptor;
  chunkSize: number;
  sourceImage?: string;
  /** A start-up trace to carry (annotation `org.ondemand.prefetch-trace`). */
  prefetchTrace?: StartupTrace;
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

export function bootstrapLayer(b: BootstrapDescriptor): OciDescriptor {
  return {
    mediaType: MEDIA_TYPE_ONDEMAND_BOOTSTRAP,
    digest: b.digest,
    size: b.size,
    annotations: { [ANNOTATION.bootstrapDigest]: b.uncompressedDigest, [ANNOTATION.bootstrapSize]: String(b.uncompressedSize) },
  };
}

export function makeManifest(input: ManifestInput): OciManifest {
  const annotations: Record<string, string> = { [ANNOTATION.chunkSize]: String(input.chunkSize) };
  if (input.sourceImage !== undefined) annotations[ANNOTATION.sourceImage] = input.sourceImage;
  if (input.prefetchTrace !== undefined) annotations[ANNOTATION.prefetchTrace] = traceAnnotation(input.prefetchTrace);
  return {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    config: { mediaType: input.config.mediaType, digest: input.config.digest, size: input.config.size },
    layers: [...input.blobs.map(blobLayer), bootstrapLayer(input.bootstrap)],
    annotations,
  };
}

/** Canonical bytes of a manifest (what gets hashed and stored). */
export function manifestBytes(m: OciManifest): Buffer {
  return Buffer.from(JSON.stringify(m));
}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;

type Fail = (what: string) => never;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses JSON bytes into an object, or fails naming `what`. */
export function parseJsonObject(bytes: Buffer, fail: Fail, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return fail(`${what} is not JSON (${(err as Error).message})`);
  }
  if (!isObject(v)) return fail(`${what} is not a JSON object`);
  return v;
}

export function checkDigest(v: unknown, fail: Fail, what: string): string {
  if (typeof v !== 'string' || !DIGEST_RE.test(v)) return fail(`${what} ${JSON.stringify(v)} is not a sha256 digest`);
  return v;
}

function checkSize(v: unknown, fail: Fail, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return fail(`${what} ${JSON.stringify(v)} is not a size`);
  return v;
}

/** Validates a descriptor object (mediaType, digest, size; annotations string → string). */
export function parseDescriptor(v: unknown, fail: Fail, what: string): OciDescriptor {
  if (!isObject(v)) return fail(`${what} is not an object`);
  if (typeof v.mediaType !== 'string' || v.mediaType.length === 0) fail(`${what} has no mediaType`);
  const d: OciDescriptor = { mediaType: v.mediaType as string, digest: checkDigest(v.digest, fail, `${what} digest`), size: checkSize(v.size, fail, `${what} size`) };
  if (v.annotations !== undefined) {
    if (!isObject(v.annotations) || Object.values(v.annotations).some((x) => typeof x !== 'string')) fail(`${what} annotations are not strings`);
    d.annotations = v.annotations as Record<string, string>;
  }
  if (v.platform !== undefined) {
    const p = v.platform;
    if (!isObject(p) || typeof p.os !== 'string' || typeof p.architecture !== 'string') fail(`${what} platform is malformed`);
    const pp = p as Record<string, unknown>;
    d.platform = { os: pp.os as string, architecture: pp.architecture as string };
    if (typeof pp.variant === 'string') d.platform.variant = pp.variant;
  }
  return d;
}

function annotationInt(a: Record<string, string> | undefined, key: string, fail: Fail, what: string): number {
  const v = a?.[key];
  if (v === undefined) return fail(`${what} lacks annotation ${key}`);
  if (!/^(0|[1-9][0-9]{0,15})$/.test(v) || !Number.isSafeInteger(Number(v))) return fail(`${what} annotation ${key}=${JSON.stringify(v)} is not a number`);
  return Number(v);
}

function annotationStr(a: Record<string, string> | undefined, key: string, fail: Fail, what: string): string {
  const v = a?.[key];
  if (v === undefined) return fail(`${what} lacks annotation ${key}`);
  return v;
}

function parseBlobLayer(d: OciDescriptor, fail: Fail, what: string): BlobDescriptor {
  const a = d.annotations;
  const blobId = annotationStr(a, ANNOTATION.blobId, fail, what);
  if (!HEX64_RE.test(blobId)) fail(`${what} blob id ${JSON.stringify(blobId)} is not 64 hex digits`);
  const compression = annotationStr(a, ANNOTATION.compression, fail, what);
  if (!(COMPRESSIONS as readonly string[]).includes(compression)) fail(`${what} has unknown compression ${JSON.stringify(compression)}`);
  const b: BlobDescriptor = {
    digest: d.digest,
    size: d.size,
    blobId,
    uncompressedSize: annotationInt(a, ANNOTATION.uncompressedSize, fail, what),
    tocOffset: annotationInt(a, ANNOTATION.tocOffset, fail, what),
    tocSize: annotationInt(a, ANNOTATION.tocSize, fail, what),
    tocDigest: checkDigest(a?.[ANNOTATION.tocDigest], fail, `${what} TOC digest`),
    compression: compression as Compression,
    frameSize: annotationInt(a, ANNOTATION.frameSize, fail, what),
  };
  if (b.uncompressedSize % 4096 !== 0) fail(`${what} uncompressed size ${b.uncompressedSize} is not a multiple of 4096`);
  if (b.frameSize === 0 || b.frameSize % 4096 !== 0) fail(`${what} frame size ${b.frameSize} is not a positive multiple of 4096`);
  if (b.tocSize < 64 || b.tocOffset + b.tocSize !== b.size) fail(`${what} TOC [${b.tocOffset}, +${b.tocSize}) is not the end of the ${b.size}-byte blob`);
  return b;
}

/**
 * Parses and checks manifest bytes. `manifestDigest` is the digest the caller verified the bytes
 * against. Any deviation from docs/image-format.md is a FormatError naming it.
 */
export function parseManifest(bytes: Buffer, context: { ref: string; manifestDigest: string }): OndemandImage {
  const fail: Fail = (what) => {
    throw new FormatError(`bad ondemand manifest: ${what}`, { image: context.ref });
  };
  const m = parseJsonObject(bytes, fail, 'manifest');
  if (m.schemaVersion !== 2) fail(`schemaVersion ${JSON.stringify(m.schemaVersion)} is not 2`);
  if (m.mediaType !== undefined && m.mediaType !== MEDIA_TYPE_OCI_MANIFEST) fail(`media type ${JSON.stringify(m.mediaType)} is not an OCI image manifest`);
  const config = parseDescriptor(m.config, fail, 'config');
  if (!Array.isArray(m.layers) || m.layers.length === 0) fail('no layers');
  const layers = (m.layers as unknown[]).map((l, i) => parseDescriptor(l, fail, `layer ${i}`));
  const last = layers[layers.length - 1]!;
  if (last.mediaType !== MEDIA_TYPE_ONDEMAND_BOOTSTRAP) {
    fail(`last layer has media type ${last.mediaType}, not ${MEDIA_TYPE_ONDEMAND_BOOTSTRAP} (not an ondemand image?)`);
  }
  const blobs = layers.slice(0, -1).map((l, i) => {
    if (l.mediaType !== MEDIA_TYPE_ONDEMAND_BLOB) fail(`layer ${i} has media type ${l.mediaType}, not ${MEDIA_TYPE_ONDEMAND_BLOB}`);
    return parseBlobLayer(l, fail, `layer ${i}`);
  });
  const bootstrap: BootstrapDescriptor = {
    digest: last.digest,
    size: last.size,
    uncompressedDigest: checkDigest(last.annotations?.[ANNOTATION.bootstrapDigest], fail, 'bootstrap uncompressed digest'),
    uncompressedSize: annotationInt(last.annotations, ANNOTATION.bootstrapSize, fail, 'bootstrap layer'),
  };
  if (bootstrap.uncompressedSize < 4096 || bootstrap.uncompressedSize % 4096 !== 0) fail(`bootstrap size ${bootstrap.uncompressedSize} is not a positive multiple of 4096`);
  const annotations = m.annotations === undefined ? undefined : (isObject(m.annotations) ? (m.annotations as Record<string, string>) : fail('manifest annotations are not an object'));
  const chunkSize = annotationInt(annotations, ANNOTATION.chunkSize, fail, 'manifest');
  if (chunkSize < 4096 || chunkSize > 2 ** 30 || (chunkSize & (chunkSize - 1)) !== 0) fail(`chunk size ${chunkSize} is not a power of two >= 4096`);
  return {
    ref: context.ref,
    manifestDigest: context.manifestDigest,
    chunkSize,
    bootstrap,
    blobs,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    ...(annotations?.[ANNOTATION.prefetchTrace] !== undefined ? { prefetchTrace: annotations[ANNOTATION.prefetchTrace] } : {}),
  };
}
