/** Manifests and indexes as the registry serves them: Accept headers, parsing and checking. */
import { FormatError } from '../util/errors.js';
import {
  MEDIA_TYPE_DOCKER_MANIFEST,
  MEDIA_TYPE_DOCKER_MANIFEST_LIST,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
} from '../format/image/media-types.js';
import type { Platform } from './platform.js';

/**
 * Everything we can read. distribution answers 404 for an OCI manifest requested without the OCI
 * type, and for an index requested with manifest types only, so always send all four.
 */
export const MANIFEST_ACCEPT = [MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST_LIST].join(', ');

export const INDEX_MEDIA_TYPES = new Set([MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_MANIFEST_LIST]);
export const MANIFEST_MEDIA_TYPES = new Set([MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST]);

/** Largest manifest we read (distribution's own limit is 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  urls?: string[];
  platform?: Platform;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** A manifest or index as fetched: exact bytes (their digest is the identity) plus the parse. */
export interface FetchedManifest {
  mediaType: string;
  digest: string;
  bytes: Buffer;
}

const DIGEST = /^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringMap(v: unknown, where: string, context: { image: string }): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isRecord(v) || Object.values(v).some((x) => typeof x !== 'string')) throw new FormatError(`${where}: annotations must map strings to strings`, context);
  return v as Record<string, string>;
}

export function parseDescriptor(v: unknown, where: string, context: { image: string }): Descriptor {
  if (!isRecord(v)) throw new FormatError(`${where} is not an object`, context);
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== 'string' || mediaType === '') throw new FormatError(`${where} has no mediaType`, context);
  if (typeof digest !== 'string' || !DIGEST.test(digest)) throw new FormatError(`${where} has an invalid digest`, context);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new FormatError(`${where} has an invalid size`, context);
  const d: Descriptor = { mediaType, digest, size };
  const annotations = stringMap(v.annotations, where, context);
  if (annotations) d.annotations = annotations;
  if (Array.isArray(v.urls)) d.urls = v.urls.filter((u): u is string => typeof u === 'string');
  if (isRecord(v.platform)) {
    const p = v.platform;
    if (typeof p.os === 'string' && typeof p.architecture === 'string') {
      d.platform = { os: p.os, architecture: p.architecture };
      if (typeof p.variant === 'string') d.platform.variant = p.variant;
    }
  }
  return d;
}

function parseJson(bytes: Buffer, context: { image: string }): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new FormatError('manifest is not valid JSON', context);
  }
  if (!isRecord(v)) throw new FormatError('manifest is not a JSON object', context);
  return v;
}

/** The media type: the body's own field, else the Content-Type the registry sent. */
export function manifestMediaType(bytes: Buffer, contentType: string | undefined, image: string): string {
  const v = parseJson(bytes, { image });
  if (typeof v.mediaType === 'string' && v.mediaType !== '') return v.mediaType;
  const ct = contentType?.split(';')[0]?.trim();
  if (ct && ct !== 'application/json' && ct !== 'text/plain') return ct;
  // An OCI manifest may omit mediaType: tell manifest and index apart by their fields.
  if (Array.isArray(v.manifests)) return MEDIA_TYPE_OCI_INDEX;
  if (Array.isArray(v.layers)) return MEDIA_TYPE_OCI_MANIFEST;
  throw new FormatError('manifest has no media type', { image });
}

export function parseImageManifest(bytes: Buffer, mediaType: string, image: string): ImageManifest {
  const context = { image };
  if (!MANIFEST_MEDIA_TYPES.has(mediaType)) throw new FormatError(`unsupported manifest media type "${mediaType}"`, context);
  const v = parseJson(bytes, context);
  if (v.schemaVersion !== 2) throw new FormatError('manifest schemaVersion is not 2', context);
  if (!Array.isArray(v.layers)) throw new FormatError('manifest has no layers array', context);
  const m: ImageManifest = {
    schemaVersion: 2,
    mediaType,
    config: parseDescriptor(v.config, 'manifest config', context),
    layers: v.layers.map((l, i) => parseDescriptor(l, `manifest layer ${i}`, context)),
  };
  const annotations = stringMap(v.annotations, 'manifest', context);
  if (annotations) m.annotations = annotations;
  return m;
}

export function parseImageIndex(bytes: Buffer, mediaType: string, image: string): ImageIndex {
  const context = { image };
  if (!INDEX_MEDIA_TYPES.has(mediaType)) throw new FormatError(`unsupported index media type "${mediaType}"`, context);
  const v = parseJson(bytes, context);
  if (v.schemaVersion !== 2) throw new FormatError('index schemaVersion is not 2', context);
  if (!Array.isArray(v.manifests)) throw new FormatError('index has no manifests array', context);
  const idx: ImageIndex = { schemaVersion: 2, mediaType, manifests: v.manifests.map((d, i) => parseDescriptor(d, `index entry ${i}`, context)) };
  const annotations = stringMap(v.annotations, 'index', context);
  if (annotations) idx.annotations = annotations;
  return idx;
}
