/**
 * `cache verify`: re-hashes every frame a blob's map claims, straight from the files (the caller holds
 * the cache lock and does not have the blob open). Bad frames are dropped: bit cleared, hole punched.
 * The map is then written clean with the data file's new record: every bit left was just verified.
 */
import { closeSync } from 'node:fs';
import type { BlobToc, FrameEntry } from '../format/image/types.js';
import { punchHole } from '../native/fsops.js';
import type { Logger } from '../util/log.js';
import { mapIdentityOf, openBlobFiles } from './blob-open.js';
import type { BlobPaths } from './dir.js';
import { cacheIoError, fdatasyncAsync, pread, pwritev } from './file-io.js';
import { sha256Hex, type HashMode } from '../format/image/frames.js';
import { dataRecordOf, encodeMap } from './presence-map.js';

export interface BadFrame {
  blobId: string;
  frame: number;
  offset: number;
  length: number;
  /** 'digest': bytes do not hash to the TOC's digest; 'hole': the map claimed a frame with no data. */
  why: 'digest' | 'hole';
}

export interface BlobVerifyResult {
  blobId: string;
  /** Frames re-hashed. */
  checked: number;
  bad: BadFrame[];
  /** Set when the blob could not be checked (and nothing was changed). */
  skipped?: string;
}

export async function verifyBlobFiles(toc: BlobToc, paths: BlobPaths, hash: HashMode, now: number, log: Logger): Promise<BlobVerifyResult> {
  const files = openBlobFiles(toc, paths, { verifyOnOpen: 'always', now }, log);
  const { dataFd, mapFd, bits, unverified } = files;
  const frame = (i: number): FrameEntry => toc.frames[i] as FrameEntry;
  const bad: BadFrame[] = files.inHoles.map((i) => ({ blobId: toc.blobId, frame: i, offset: frame(i).uncompressedOffset, length: frame(i).uncompressedSize, why: 'hole' }));
  try {
    for (const i of unverified.present()) {
      const f = frame(i);
      const bytes = await pread(dataFd, f.uncompressedSize, f.uncompressedOffset);
      if (bytes.length === f.uncompressedSize && (await sha256Hex(bytes, hash)) === f.digest) {
        bits.set(i);
        continue;
      }
      bad.push({ blobId: toc.blobId, frame: i, offset: f.uncompressedOffset, length: f.uncompressedSize, why: 'digest' });
      punchHole(dataFd, f.uncompressedOffset, f.uncompressedSize);
    }
    // Good bytes durable and bad blocks gone before the map vouches for the file as it is now.
    await fdatasyncAsync(dataFd);
    await pwritev(mapFd, [encodeMap(mapIdentityOf(toc), bits, files.lastUsed, 0, { data: dataRecordOf(dataFd) })], 0);
    await fdatasyncAsync(mapFd);
    return { blobId: toc.blobId, checked: unverified.count + files.inHoles.length, bad };
  } catch (err) {
    throw cacheIoError(err, 'verify cached blob', { blob: toc.blobId, path: paths.data });
  } finally {
    closeSync(dataFd);
    closeSync(mapFd);
  }
}
