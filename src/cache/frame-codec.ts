/**
 * Turns a frame's stored bytes into verified uncompressed bytes. gzip runs in the libuv threadpool
 * (zlib's async API). sha256 runs on the event loop by default: with SHA-NI it costs ~0.5 ms per MiB,
 * less than handing the buffer to the threadpool pays back (see docs/cache.md, bench/cache-throughput.ts);
 * `hash: 'threadpool'` uses crypto.subtle.digest instead.
 */
import { createHash, webcrypto } from 'node:crypto';
import { gunzip } from 'node:zlib';
import type { BlobToc, FrameEntry } from '../format/image/types.js';
import { IntegrityError, errorText } from '../util/errors.js';

export type HashMode = 'event-loop' | 'threadpool';

function gunzipAsync(bytes: Buffer, maxOutputLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // One output chunk as big as the frame: with the default 16 KiB chunks, every chunk of a 1 MiB
    // frame is a round trip between the threadpool and the event loop, plus a concat at the end.
    gunzip(bytes, { maxOutputLength, chunkSize: Math.max(64, maxOutputLength) }, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

export async function sha256Hex(bytes: Buffer, mode: HashMode): Promise<string> {
  if (mode === 'event-loop') return createHash('sha256').update(bytes).digest('hex');
  const digest = await webcrypto.subtle.digest('SHA-256', bytes);
  return Buffer.from(digest).toString('hex');
}

export interface FrameContext {
  blob: string;
  frame: number;
}

/** Decompresses and verifies one frame; throws IntegrityError for anything that is not the promised bytes. */
export async function decodeFrame(toc: BlobToc, frame: FrameEntry, stored: Buffer, mode: HashMode, ctx: FrameContext): Promise<Buffer> {
  const where = { blob: ctx.blob, frame: ctx.frame, offset: frame.uncompressedOffset };
  let bytes: Buffer;
  if (toc.compression === 'gzip') {
    try {
      // One byte more than expected so an oversized frame is detected rather than silently cut.
      bytes = await gunzipAsync(stored, frame.uncompressedSize + 1);
    } catch (err) {
      throw new IntegrityError(`frame ${ctx.frame} does not decompress: ${errorText(err)}`, where);
    }
  } else {
    bytes = stored;
  }
  if (bytes.length !== frame.uncompressedSize) {
    throw new IntegrityError(`frame ${ctx.frame} has ${bytes.length} bytes, expected ${frame.uncompressedSize}`, where);
  }
  const actual = await sha256Hex(bytes, mode);
  if (actual !== frame.digest) {
    throw new IntegrityError(`frame ${ctx.frame} digest mismatch: expected ${frame.digest}, got ${actual}`, where);
  }
  return bytes;
}
