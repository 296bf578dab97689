/**
 * Read-only view of a cache directory for `ondemand cache ls`: reads maps without taking the lock
 * (a running daemon keeps owning the cache) and without repairing anything.
 */
import { closeSync, constants, openSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { BLOB_FILE_NAME, cacheLayout } from './dir.js';
import { decodeMapAny } from './presence-map.js';
import { readWhole } from './file-io.js';
import { blocksOf, listMetadata, safeReaddir, type MetadataListing } from './metadata-store.js';

export interface MapSummary {
  size: number;
  frameSize: number;
  frameCount: number;
  framesPresent: number;
  lastUsed: number;
  unclean: boolean;
}

export function readMapSummary(path: string): MapSummary | undefined {
  let fd: number;
  try {
    // Read-only, but still never through a symlink nor into a fifo.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > 64 * 1024 * 1024) return undefined;
    const m = decodeMapAny(readWhole(fd));
    if (!m) return undefined;
    return {
      size: m.identity.size, frameSize: m.identity.frameSize, frameCount: m.identity.frameCount,
      framesPresent: m.bits.count, lastUsed: m.lastUsed, unclean: m.unclean,
    };
  } finally {
    closeSync(fd);
  }
}

export interface CacheListEntry {
  blobId: string;
  /** Size of the uncompressed blob view (undefined when the map is unreadable). */
  size?: number;
  /** Bytes allocated on disk (data + map). */
  diskBytes: number;
  framesPresent?: number;
  frameCount?: number;
  /** Fraction of frames present, 0..1. */
  present?: number;
  lastUsed?: Date;
  /** Why the map could not be read; the blob is re-verified when next opened. */
  problem?: string;
}

export interface CacheListing {
  dir: string;
  blobs: CacheListEntry[];
  bootstraps: { digest: string; bytes: number }[];
  /** Manifests, TOCs and tag resolutions kept for mounting without the registry. */
  metadata: MetadataListing;
  totalBytes: number;
}

export function listCache(dir: string): CacheListing {
  const layout = cacheLayout(dir);
  const ids = new Set<string>();
  const names = safeReaddir(layout.blobs);
  for (const n of names) {
    const m = BLOB_FILE_NAME.exec(n);
    if (m) ids.add(m[1] as string);
  }
  const blobs: CacheListEntry[] = [];
  let totalBytes = 0;
  for (const id of ids) {
    const dataPath = join(layout.blobs, `${id}.data`);
    const mapPath = join(layout.blobs, `${id}.map`);
    const diskBytes = blocksOf(dataPath) + blocksOf(mapPath) + blocksOf(join(layout.blobs, `${id}.toc`));
    totalBytes += diskBytes;
    const s = readMapSummary(mapPath);
    if (!s) {
      blobs.push({ blobId: id, diskBytes, problem: 'presence map missing or unreadable' });
      continue;
    }
    blobs.push({
      blobId: id, size: s.size, diskBytes, framesPresent: s.framesPresent, frameCount: s.frameCount,
      present: s.frameCount === 0 ? 1 : s.framesPresent / s.frameCount,
      lastUsed: s.lastUsed > 0 ? new Date(s.lastUsed) : undefined,
    });
  }
  blobs.sort((a, b) => (b.lastUsed?.getTime() ?? 0) - (a.lastUsed?.getTime() ?? 0));
  const bootstraps = safeReaddir(layout.bootstraps).map((n) => ({ digest: `sha256:${n}`, bytes: blocksOf(join(layout.bootstraps, n)) }));
  for (const b of bootstraps) totalBytes += b.bytes;
  const metadata = listMetadata(dir);
  totalBytes += metadata.bytes;
  return { dir, blobs, bootstraps, metadata, totalBytes };
}
