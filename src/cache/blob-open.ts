/**
 * Opening a blob's files: created sparse when new; otherwise the presence map is loaded and checked,
 * never trusted blindly (docs/cache.md, "Opening a blob"). Its bits are trusted only when the last
 * close was clean and the data file is still the one that close recorded (dev, ino, size, mtime,
 * ctime). Otherwise the frames it names (or every frame holding data, for an unreadable map) come back
 * as `unverified`: none of them is present until re-verified from the data file (fetch-jobs.ts does
 * it lazily, so an open never waits for it).
 */
import { closeSync, fstatSync, ftruncateSync } from 'node:fs';
import type { BlobToc, FrameEntry } from '../format/image/types.js';
import { seekData } from '../native/fsops.js';
import { OndemandError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { BlobTuning } from './blob-host.js';
import type { BlobPaths } from './dir.js';
import { cacheIoError, readWhole, roundUpToBlock } from './file-io.js';
import { mapFileSize } from './map-layout.js';
import { dataRecordOf, decodeMap, PresenceBits, sameDataRecord, type MapIdentity } from './presence-map.js';
import { openCacheFile } from './safe-files.js';
import { storeToc } from './toc-store.js';

/** The reason given when every frame is checked because the opener asked for it (`cache verify`). */
const VERIFY_ALWAYS = "verifyOnOpen 'always'";

export interface BlobFiles {
  dataFd: number;
  mapFd: number;
  /** Frames present: verified in this process, or covered by a clean close of an unchanged data file. */
  bits: PresenceBits;
  /** Frames the map claims but that must be verified before they are served. */
  unverified: PresenceBits;
  /** Frames the map claims that lie in a hole of the data file (dropped: `cache verify` reports them). */
  inHoles: number[];
  lastUsed: number;
  /** Bytes the blob occupies on disk (data blocks + map). */
  allocatedBytes: number;
}

/** How far to trust a map (BlobTuning), and the last use of a blob whose map does not say. */
export type OpenChecks = Pick<BlobTuning, 'verifyOnOpen'> & { now: number };

/** Bytes a blob occupies on disk: the data file's blocks and its map. */
export function allocatedBytesOf(dataFd: number, frameCount: number): number {
  return fstatSync(dataFd).blocks * 512 + roundUpToBlock(mapFileSize(frameCount));
}

export function mapIdentityOf(toc: BlobToc): MapIdentity {
  return { blobId: toc.blobId, size: toc.uncompressedSize, frameSize: toc.frameSize, frameCount: toc.frames.length };
}

/** Opens or creates the blob's files, loading the map and deciding which of its bits to trust. */
export function openBlobFiles(toc: BlobToc, paths: BlobPaths, checks: OpenChecks, log: Logger): BlobFiles {
  const ctx = { blob: toc.blobId, path: paths.data };
  const identity = mapIdentityOf(toc);
  let dataFd = -1;
  let mapFd = -1;
  try {
    dataFd = openCacheFile(paths.data, 'data file', { create: true });
    mapFd = openCacheFile(paths.map, 'presence map', { create: true });
    storeToc(paths.toc, toc);
    const record = dataRecordOf(dataFd);
    const dataSize = Number(record.size);
    const mapBytes = readWhole(mapFd);
    const decoded = mapBytes.length === 0 && dataSize === 0 ? { invalid: 'new' } : decodeMap(mapBytes, identity);
    let bits = new PresenceBits(identity.frameCount);
    let claimed: PresenceBits | 'all' | undefined;
    let reason = '';
    let lastUsed = checks.now;
    if ('invalid' in decoded) {
      if (decoded.invalid !== 'new') [claimed, reason] = ['all', decoded.invalid];
    } else {
      lastUsed = decoded.lastUsed || lastUsed;
      if (decoded.unclean) reason = 'its last owner did not close it (crash or kill)';
      else if (checks.verifyOnOpen === 'always') reason = VERIFY_ALWAYS;
      else if (!decoded.data) reason = 'no clean-close record of the data file (older map)';
      else if (!sameDataRecord(decoded.data, record)) reason = 'the data file changed since the clean close (deleted, replaced, written or truncated)';
      if (reason === '') bits = decoded.bits;
      else claimed = decoded.bits;
    }
    if (dataSize !== identity.size) {
      if (dataSize !== 0) log.warn({ path: paths.data, dataSize, expected: identity.size }, 'cache data file has the wrong size; repairing');
      ftruncateSync(dataFd, identity.size);
    }
    const unverified = new PresenceBits(identity.frameCount);
    const inHoles: number[] = [];
    if (claimed !== undefined) {
      for (const i of framesHoldingData(dataFd, toc.frames, claimed)) unverified.set(i);
      if (claimed !== 'all') for (const i of claimed.present()) if (!unverified.has(i)) inHoles.push(i);
      // Asked for (`cache verify`): nothing is wrong, so not a warning on the command's output.
      log[reason === VERIFY_ALWAYS ? 'debug' : 'warn']({ reason, unverified: unverified.count, dropped: inHoles.length }, 'presence map not trusted; its frames are verified again before use');
    }
    return { dataFd, mapFd, bits, unverified, inHoles, lastUsed, allocatedBytes: allocatedBytesOf(dataFd, identity.frameCount) };
  } catch (err) {
    if (dataFd >= 0) closeSync(dataFd);
    if (mapFd >= 0) closeSync(mapFd);
    if (err instanceof OndemandError) throw err;
    throw cacheIoError(err, 'open cache entry', ctx);
  }
}

/**
 * The frames of `which` that hold data: a frame lying entirely in a hole was never written (or its
 * data file was deleted or cut), so it is not worth reading back. One SEEK_DATA per data extent.
 */
function framesHoldingData(dataFd: number, frames: readonly FrameEntry[], which: PresenceBits | 'all'): number[] {
  const out: number[] = [];
  let nextData: number | null = -1;
  for (let i = 0; i < frames.length; i++) {
    if (which !== 'all' && !which.has(i)) continue;
    const f = frames[i] as FrameEntry;
    if (nextData !== null && nextData < f.uncompressedOffset) nextData = seekDataOrAll(dataFd, f.uncompressedOffset);
    if (nextData === null) break;
    if (nextData < f.uncompressedOffset + f.uncompressedSize) out.push(i);
  }
  return out;
}

/** SEEK_DATA, or "data here" on a file system without it. */
function seekDataOrAll(fd: number, offset: number): number | null {
  try {
    return seekData(fd, offset);
  } catch {
    return offset;
  }
}
