/**
 * A frame's stored bytes → its verified uncompressed bytes: decompress (bounded), check size and
 * sha256. Fetching frames is src/reader/blob-view.ts; the daemon's cache has its own path.
 */
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzip as gunzipCb } from 'node:zlib';
import { IntegrityError } from '../../util/errors.js';
import type { BlobToc, FrameEntry } from './types.js';

const gunzip = promisify(gunzipCb);

/** Decompresses one frame's stored bytes and checks size and digest. */
export async function decodeFrame(stored: Buffer, frame: FrameEntry, toc: BlobToc, context: { blob: string; index: number }): Promise<Buffer> {
  const ctx = { blob: context.blob, frame: context.index, offset: frame.uncompressedOffset };
  let raw: Buffer;
  if (toc.compression === 'gzip') {
    try {
      raw = await gunzip(stored, { maxOutputLength: frame.uncompressedSize + 1 });
    } catch (err) {
      throw new IntegrityError(`frame ${context.index} does not decompress: ${(err as Error).message}`, ctx);
    }
  } else {
    raw = stored;
  }
  if (raw.length !== frame.uncompressedSize) {
    throw new IntegrityError(`frame ${context.index} decompresses to ${raw.length} bytes, expected ${frame.uncompressedSize}`, ctx);
  }
  const digest = createHash('sha256').update(raw).digest('hex');
  if (digest !== frame.digest) throw new IntegrityError(`frame ${context.index} digest mismatch`, ctx);
  return raw;
}
