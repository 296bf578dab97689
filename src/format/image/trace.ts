/**
 * A start-up trace (docs/startup-trace.md): the ranges of an image's blobs its programs read first,
 * in order. Kept by the cache, exported as JSON, and carried in an image's manifest annotation
 * `org.ondemand.prefetch-trace` (gzip, then base64: no extra round trip to get it).
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { FormatError } from '../../util/errors.js';

export const TRACE_VERSION = 1;

/** Largest trace annotation accepted (registries cap manifests at a few MiB). */
const MAX_ANNOTATION_BYTES = 1024 * 1024;

export interface StartupTrace {
  version: number;
  /** The manifest of the image it was recorded on (informational: a trace applies to any image with these blobs). */
  manifestDigest: string;
  recordedAt: string;
  seconds: number;
  /** In first-read order; offsets and lengths in the blob's uncompressed view, whole frames. */
  ranges: { blob: string; offset: number; length: number }[];
}

export function parseTrace(text: string, what: string): StartupTrace {
  let v: Partial<StartupTrace>;
  try {
    v = JSON.parse(text) as Partial<StartupTrace>;
  } catch (err) {
    throw new FormatError(`${what}: not a start-up trace (${String(err)})`);
  }
  const ok = v.version === TRACE_VERSION && typeof v.manifestDigest === 'string' && Array.isArray(v.ranges)
    && v.ranges.every((r) => typeof r.blob === 'string' && /^sha256:[0-9a-f]{64}$/.test(r.blob) && Number.isSafeInteger(r.offset) && r.offset >= 0
      && Number.isSafeInteger(r.length) && r.length > 0);
  if (!ok) throw new FormatError(`${what}: not a version ${TRACE_VERSION} start-up trace`);
  return v as StartupTrace;
}

/** The manifest annotation value carrying `trace`. */
export function traceAnnotation(trace: StartupTrace): string {
  const value = gzipSync(Buffer.from(JSON.stringify(trace)), { level: 9 }).toString('base64');
  if (value.length > MAX_ANNOTATION_BYTES) {
    throw new FormatError(`start-up trace too large for the manifest (${value.length} bytes encoded, at most ${MAX_ANNOTATION_BYTES}): record a shorter window`);
  }
  return value;
}

/** The trace a manifest annotation carries; FormatError naming `what` when it is not one. */
export function traceFromAnnotation(value: string, what: string): StartupTrace {
  if (value.length > MAX_ANNOTATION_BYTES) throw new FormatError(`${what}: larger than ${MAX_ANNOTATION_BYTES} bytes`);
  let text: string;
  try {
    text = gunzipSync(Buffer.from(value, 'base64'), { maxOutputLength: 16 * MAX_ANNOTATION_BYTES }).toString('utf8');
  } catch (err) {
    throw new FormatError(`${what}: not gzip and base64 (${String(err)})`);
  }
  return parseTrace(text, what);
}
