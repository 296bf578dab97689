/**
 * Where the cache lives and what it looks like on disk:
 *   <dir>/lock                 flock'ed by the one process that owns the cache (holds its pid)
 *   <dir>/blobs/<id>.data      sparse uncompressed blob view, exactly `size` bytes
 *   <dir>/blobs/<id>.map       presence map (see map-layout.ts)
 *   <dir>/blobs/<id>.toc       the blob's table of contents with a checksum (toc-store.ts)
 *   <dir>/bootstraps/<hex>     verified uncompressed erofs bootstraps
 *   <dir>/manifests/<hex>, <dir>/tocs/<hex>, <dir>/tags/<hex>.json   image metadata (metadata-store.ts)
 *   <dir>/tmp/                 temp files renamed into place
 * The directory must be on a filesystem with real holes and in-place writes: tmpfs, ramfs and
 * overlayfs are refused. Folders are 0700, files 0600, and nothing below the root is followed
 * through a symlink (safe-files.ts).
 */
import { join } from 'node:path';
import { FS_MAGIC, fsTypeName, statfsType } from '../native/statfs.js';
import { CacheError, errorText } from '../util/errors.js';
import { defaultCacheDir } from '../util/user-dirs.js';
import { ensureCacheDir } from './safe-files.js';

export const DEFAULT_CACHE_DIR = defaultCacheDir();

/** `--cache-dir`, else $ONDEMAND_CACHE_DIR, else /var/cache/ondemand (root) or the user's cache dir. */
export function resolveCacheDir(flag?: string): string {
  if (flag !== undefined && flag !== '') return flag;
  const env = process.env.ONDEMAND_CACHE_DIR;
  if (env !== undefined && env !== '') return env;
  return DEFAULT_CACHE_DIR;
}

export interface BlobPaths {
  data: string;
  map: string;
  /** The blob's table of contents as last opened (toc-store.ts), for `cache verify`. */
  toc: string;
}

export interface CacheLayout {
  dir: string;
  lock: string;
  blobs: string;
  bootstraps: string;
  tmp: string;
}

export function cacheLayout(dir: string): CacheLayout {
  return { dir, lock: join(dir, 'lock'), blobs: join(dir, 'blobs'), bootstraps: join(dir, 'bootstraps'), tmp: join(dir, 'tmp') };
}

export function blobPaths(layout: CacheLayout, blobId: string): BlobPaths {
  return { data: join(layout.blobs, `${blobId}.data`), map: join(layout.blobs, `${blobId}.map`), toc: join(layout.blobs, `${blobId}.toc`) };
}

/** Names of a blob's files in <dir>/blobs: blob id and kind. */
export const BLOB_FILE_NAME = /^([0-9a-f]{64})\.(data|map|toc)$/;

const REFUSED = new Map<number, string>([
  [FS_MAGIC.tmpfs, 'tmpfs keeps the cache in memory and is lost on reboot'],
  [FS_MAGIC.ramfs, 'ramfs keeps the cache in memory and is lost on reboot'],
  [FS_MAGIC.overlayfs, 'overlayfs copies whole files up on write and has no reliable holes'],
]);

/** Throws CacheError when `dir` is on a filesystem the cache cannot use. */
export function checkCacheFilesystem(dir: string): void {
  let magic: number;
  try {
    magic = statfsType(dir);
  } catch (err) {
    throw new CacheError(`cannot inspect cache directory ${dir}: ${errorText(err)}`, { path: dir }, { cause: err });
  }
  const why = REFUSED.get(magic);
  if (why !== undefined) {
    throw new CacheError(
      `cache directory ${dir} is on ${fsTypeName(magic)}, which the cache refuses (${why}); ` +
        'use a directory on ext4, xfs or btrfs (--cache-dir or $ONDEMAND_CACHE_DIR)',
      { path: dir },
    );
  }
}

/** Creates the layout's folders (0700, never through a symlink below the root) and checks the filesystem. */
export function prepareCacheDir(dir: string): CacheLayout {
  const layout = cacheLayout(dir);
  ensureCacheDir(layout.dir, true);
  for (const d of [layout.blobs, layout.bootstraps, layout.tmp]) ensureCacheDir(d);
  checkCacheFilesystem(dir);
  return layout;
}
