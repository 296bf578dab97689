/**
 * Opening a blob's two files: created sparse when new; otherwise the presence map is loaded and
 * checked, never trusted blindly, and repaired by re-verifying frames from the data file
 * (docs/cache.md, "Opening a blob").
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync } from 'node:fs';
import type { BlobDescriptor, BlobToc, FrameEntry } from '../format/image/types.js';
import { seekData } from '../native/fsops.js';
import { CacheError, OndemandError } from '../util/errors.js';
import { logFor, type Logger } from '../util/log.js';
import type { BlobTuning } from './blob-host.js';
import { cacheIoError, fdatasyncAsync, pread, readWhole, roundUpToBlock } from './file-io.js';
import { sha256Hex, type HashMode } from './frame-codec.js';
import { mapFileSize } from './map-layout.js';
import { decodeMap, PresenceBits, type MapIdentity } from './presence-map.js';

export interface BlobFiles {
  dataFd: number;
  mapFd: number;
  bits: PresenceBits;
  lastUsed: number;
  /** Bytes the blob occupies on disk (data blocks + map). */
  allocatedBytes: number;
}

/** How far to trust a map (BlobTuning), and the last use of a blob whose map does not say. */
export type OpenChecks = Pick<BlobTuning, 'verifyOnOpen' | 'hash'> & { now: number };

/** Bytes a blob occupies on disk: the data file's blocks and its map. */
export function allocatedBytesOf(dataFd: number, frameCount: number): number {
  return fstatSync(dataFd).blocks * 512 + roundUpToBlock(mapFileSize(frameCount));
}

/** Opens or creates the blob's files, loading the map and repairing it when it cannot be trusted. */
export async function openBlobFiles(
  descriptor: BlobDescriptor, toc: BlobToc, paths: { data: string; map: string }, checks: OpenChecks, log: Logger,
): Promise<BlobFiles> {
  const ctx = { blob: toc.blobId, path: paths.data };
  if (descriptor.blobId !== toc.blobId || descriptor.uncompressedSize !== toc.uncompressedSize) {
    throw new CacheError('table of contents does not match the blob descriptor', ctx);
  }
  const identity: MapIdentity = {
    blobId: toc.blobId, size: toc.uncompressedSize, frameSize: toc.frameSize, frameCount: toc.frames.length,
  };
  let dataFd = -1;
  let mapFd = -1;
  try {
    dataFd = openSync(paths.data, constants.O_RDWR | constants.O_CREAT, 0o644);
    mapFd = openSync(paths.map, constants.O_RDWR | constants.O_CREAT, 0o644);
    const dataSize = fstatSync(dataFd).size;
    const mapBytes = readWhole(mapFd);
    const decoded = mapBytes.length === 0 && dataSize === 0 ? { invalid: 'new' } : decodeMap(mapBytes, identity);
    let bits: PresenceBits;
    let lastUsed = checks.now;
    let verify: 'none' | 'present' | 'all' = 'none';
    if ('invalid' in decoded) {
      bits = new PresenceBits(identity.frameCount);
      if (decoded.invalid !== 'new') verify = 'all';
    } else {
      bits = decoded.bits;
      lastUsed = decoded.lastUsed || lastUsed;
      if (decoded.unclean || checks.verifyOnOpen === 'always') verify = 'present';
    }
    if (dataSize !== identity.size) {
      if (dataSize !== 0) logFor(ctx).warn({ dataSize, expected: identity.size }, 'cache data file has the wrong size; repairing');
      ftruncateSync(dataFd, identity.size);
      if (verify === 'none' && dataSize !== 0) verify = 'all';
    }
    if (verify !== 'none') {
      if (verify === 'all') log.warn({ reason: 'invalid' in decoded ? decoded.invalid : 'size' }, 'presence map cannot be trusted; re-verifying frames');
      await reverify(dataFd, toc.frames, bits, verify, checks.hash, log);
    }
    return { dataFd, mapFd, bits, lastUsed, allocatedBytes: allocatedBytesOf(dataFd, identity.frameCount) };
  } catch (err) {
    if (dataFd >= 0) closeSync(dataFd);
    if (mapFd >= 0) closeSync(mapFd);
    if (err instanceof OndemandError) throw err;
    throw cacheIoError(err, 'open cache entry', ctx);
  }
}

/** Re-verifies frames from the data file: 'present' checks set bits, 'all' rebuilds the map. */
async function reverify(
  dataFd: number, frames: readonly FrameEntry[], bits: PresenceBits, which: 'present' | 'all', hash: HashMode, log: Logger,
): Promise<void> {
  let cleared = 0;
  let found = 0;
  for (let i = 0; i < frames.length; i++) {
    if (which === 'present' && !bits.has(i)) continue;
    const f = frames[i] as FrameEntry;
    if (which === 'all') {
      // A frame lying entirely in a hole was never written: skip reading zeros.
      const data = seekData(dataFd, f.uncompressedOffset);
      if (data === null || data >= f.uncompressedOffset + f.uncompressedSize) {
        if (bits.has(i)) cleared++;
        bits.clear(i);
        continue;
      }
    }
    const bytes = await pread(dataFd, f.uncompressedSize, f.uncompressedOffset);
    const ok = bytes.length === f.uncompressedSize && (await sha256Hex(bytes, hash)) === f.digest;
    if (ok) {
      if (!bits.has(i)) found++;
      bits.set(i);
    } else if (bits.has(i)) {
      bits.clear(i);
      cleared++;
    }
  }
  // Bits found by re-verification must name durable bytes before the map says so.
  if (found > 0) await fdatasyncAsync(dataFd);
  if (cleared > 0 || found > 0) log.warn({ cleared, found, present: bits.count }, 'presence map repaired');
}
