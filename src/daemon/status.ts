/**
 * The daemon's figures, gathered in one place: the `status` request answers with them and the
 * metrics endpoint turns the same object into Prometheus text at each scrape. Reading them costs a
 * walk over the mounts' blobs (counters kept anyway by the cache): nothing is added to reads.
 */
import type { CacheBackend } from '../cache/types.js';
import type { MountManager } from '../mount/manager.js';
import type { StatusResult } from './protocol.js';

export interface StatusSources {
  cache: CacheBackend;
  manager: Pick<MountManager, 'status'>;
  supervisorPid: number;
  workerRestarts: number;
  cacheDir: string;
  metricsAddress: string | null;
}

export function gatherStatus(src: StatusSources): StatusResult {
  const s = src.cache.stats();
  const mem = process.memoryUsage();
  return {
    daemon: {
      pid: src.supervisorPid, workerPid: process.pid, workerRestarts: src.workerRestarts, cacheDir: src.cacheDir,
      memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, heapTotalBytes: mem.heapTotal, externalBytes: mem.external },
      metricsAddress: src.metricsAddress,
    },
    ...src.manager.status(),
    cache: {
      dir: src.cache.dir,
      hits: s.hits,
      misses: s.misses,
      bytesFetched: s.bytesFetched,
      requestsFetched: s.requestsFetched,
      prefetchBytesFetched: s.prefetchBytesFetched ?? 0,
      prefetchRequestsFetched: s.prefetchRequestsFetched ?? 0,
      failedReads: s.failedReads ?? 0,
      usageBytes: src.cache.usage?.() ?? 0,
      maxSizeBytes: src.cache.maxSize ?? null,
      evictedBlobs: src.cache.evictedBlobs ?? 0,
    },
  };
}
