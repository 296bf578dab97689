/** The cache backend's public surface. */
export { openCache, Cache, DEFAULT_TUNING, type CacheOptions } from './backend.js';
export { resolveCacheDir, checkCacheFilesystem, DEFAULT_CACHE_DIR } from './dir.js';
export { listCache, type CacheListing, type CacheListEntry } from './inventory.js';
export { parseSize, formatSize } from './size.js';
export { bandwidthBudget } from './scheduler.js';
export type { HashMode } from '../format/image/frames.js';
export type { BadFrame, BlobVerifyResult } from './verify.js';
export type * from './types.js';
