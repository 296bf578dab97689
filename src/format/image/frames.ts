/**
 * A frame's stored bytes → its verified uncompressed bytes: decompress (bounded), check size and
 * sha256. The one decoder of frames: the daemon's cache (src/cache/fetch-jobs.ts), the reader behind
 * `ondemand cat`/`check` (src/reader) and the benches use it alike.
 * gzip runs in the libuv threadpool (zlib's async API). sha256 runs on the event loop by default: with
 * SHA-NI it costs ~0.5 ms per MiB, less than handing the buffer to the threadpool pays back (see
 * docs/cache.md, bench/cache-throughput.ts); `'threadpool'` uses crypto.subtle.digest instead.
 */
import { createHash, webcrypto } from 'node:crypto';
import { gunzip } from 'node:zlib';
import { IntegrityError, errorText } from '../../util/errors.js';
import type { BlobToc, FrameEntry } from './types.js';

export type HashMode = 'event-loop' | 'threadpool';

function gunzipAsync(bytes: Buffer, maxOutputLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // One output chunk as big as the frame: with the default 16 KiB chunks, every chunk of a 1 MiB
    // frame is a round trip between the threadpool and the event loop, plus a concat at the end.
    gunzip(bytes, { maxOutputLength, chunkSize: Math.max(64, maxOutputLength) }, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

export async function sha256Hex(bytes: Buffer, mode: HashMode = 'event-loop'): Promise<string> {
  if (mode === 'event-loop') return createHash('sha256').update(bytes).digest('hex');
  const digest = await webcrypto.subtle.digest('SHA-256', bytes);
  return Buffer.from(digest).toString('hex');
}

/** Decompresses and verifies one frame; throws IntegrityError for anything that is not the promised bytes. */
export async function decodeFrame(
  stored: Buffer, frame: FrameEntry, toc: BlobToc, context: { blob: string; index: number }, hash: HashMode = 'event-loop',
): Promise<Buffer> {
  const where = { blob: context.blob, frame: context.index, offset: frame.uncompressedOffset };
  let bytes: Buffer;
  if (toc.compression === 'gzip') {
    try {
      // One byte more than expected so an oversized frame is detected rather than silently cut.
      bytes = await gunzipAsync(stored, frame.uncompressedSize + 1);
    } catch (err) {
      throw new IntegrityError(`frame ${context.index} does not decompress: ${errorText(err)}`, where);
    }
  } else {
    bytes = stored;
  }
  if (bytes.length !== frame.uncompressedSize) {
    throw new IntegrityError(`frame ${context.index} has ${bytes.length} bytes, expected ${frame.uncompressedSize}`, where);
  }
  const actual = await sha256Hex(bytes, hash);
  if (actual !== frame.digest) {
    throw new IntegrityError(`frame ${context.index} digest mismatch: expected ${frame.digest}, got ${actual}`, where);
  }
  return bytes;
}
