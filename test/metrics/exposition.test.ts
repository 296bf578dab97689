/**
 * The metrics endpoint's text from given figures (no daemon), the timed fetcher that feeds its fetch
 * figures, and the cache's prefetch share of bytes fetched.
 */
import { describe, expect, it } from 'vitest';
import { DaemonMetrics, parseListenAddress, serveMetrics } from '../../src/daemon/metrics.js';
import type { StatusResult } from '../../src/daemon/protocol.js';
import { ObservedFetcher } from '../../src/fetch/observed.js';
import type { BlobFetcher } from '../../src/fetch/types.js';
import { makeBlobFixture } from '../helpers/blob-fixture.js';
import { freshCache, useCleanups } from '../cache/helpers.js';

useCleanups();

function figures(): StatusResult {
  const blob = (digest: string, bytes: number, prefetchBytes: number): StatusResult['mounts'][number]['blobs'][number] => ({
    digest, bytesFetched: bytes, requests: 3, prefetchBytesFetched: prefetchBytes, prefetchRequests: 1, hits: 10, misses: 2, failedReads: 0,
    framesPresent: 4, framesTotal: 8, bytesPresent: 4096, bytesTotal: 8192,
  });
  return {
    daemon: {
      pid: 100, workerPid: 101, workerRestarts: 2, cacheDir: '/c',
      memory: { rssBytes: 5e7, heapUsedBytes: 1e7, heapTotalBytes: 2e7, externalBytes: 1e6 }, metricsAddress: '127.0.0.1:9469',
    },
    mounts: [{
      mountpoint: '/mnt/a', image: 'oci:/img:t', mode: 'fuse-blobs',
      bytesFetched: 3000, requests: 6, hits: 20, misses: 4, failedReads: 1, prefetchBytesFetched: 1000, prefetchRequests: 2, bytesPresent: 8192, bytesTotal: 16384,
      readWait: { boundsMs: [1, 10], counts: [3, 1, 1], totalMs: 250 },
      fetch: { requests: 6, failed: 1, inFlight: 2, stalled: 1, oldestInFlightMs: 12_000, latency: { boundsMs: [5, 50], counts: [1, 4, 1], totalMs: 400 } },
      blobs: [blob('sha256:aa', 2000, 1000), blob('sha256:bb', 1000, 0)],
    }],
    cache: {
      dir: '/c', hits: 25, misses: 5, bytesFetched: 4000, requestsFetched: 7, prefetchBytesFetched: 1000, prefetchRequestsFetched: 2,
      failedReads: 1, usageBytes: 123456, maxSizeBytes: null, evictedBlobs: 3,
    },
  };
}

describe('metrics exposition', () => {
  it('turns the status figures into Prometheus text', async () => {
    let scrapes = 0;
    const m = new DaemonMetrics(() => { scrapes++; return figures(); });
    const text = await m.text();
    expect(scrapes).toBe(1);
    const lines = text.split('\n');
    const mount = 'mountpoint="/mnt/a",image="oci:/img:t"';
    for (const line of [
      '# TYPE ondemand_mount_fetched_bytes_total counter',
      `ondemand_mount_fetched_bytes_total{${mount},kind="demand"} 2000`,
      `ondemand_mount_fetched_bytes_total{${mount},kind="prefetch"} 1000`,
      `ondemand_mount_fetch_requests_total{${mount},kind="demand"} 4`,
      `ondemand_mount_cache_hits_total{${mount}} 20`,
      `ondemand_mount_cache_misses_total{${mount}} 4`,
      `ondemand_mount_failed_reads_total{${mount}} 1`,
      `ondemand_mount_fetch_failures_total{${mount}} 1`,
      `ondemand_mount_fetches_in_flight{${mount}} 2`,
      `ondemand_mount_fetches_stalled{${mount}} 1`,
      '# TYPE ondemand_mount_read_wait_seconds histogram',
      `ondemand_mount_read_wait_seconds_bucket{${mount},le="0.001"} 3`,
      `ondemand_mount_read_wait_seconds_bucket{${mount},le="0.01"} 4`,
      `ondemand_mount_read_wait_seconds_bucket{${mount},le="+Inf"} 5`,
      `ondemand_mount_read_wait_seconds_sum{${mount}} 0.25`,
      `ondemand_mount_read_wait_seconds_count{${mount}} 5`,
      `ondemand_mount_fetch_duration_seconds_bucket{${mount},le="0.05"} 5`,
      `ondemand_mount_fetch_duration_seconds_count{${mount}} 6`,
      `ondemand_blob_fetched_bytes_total{${mount},blob="sha256:aa",kind="prefetch"} 1000`,
      `ondemand_blob_fetched_bytes_total{${mount},blob="sha256:bb",kind="demand"} 1000`,
      `ondemand_blob_frames_present{${mount},blob="sha256:bb"} 4`,
      'ondemand_mounts 1',
      'ondemand_cache_usage_bytes 123456',
      'ondemand_cache_evicted_blobs_total 3',
      'ondemand_cache_fetched_bytes_total{kind="demand"} 3000',
      'ondemand_cache_failed_reads_total 1',
      'ondemand_worker_restarts_total 2',
    ]) expect(lines).toContain(line);
    // No limit: 0.
    expect(lines).toContain('ondemand_cache_max_size_bytes 0');
    // Only what the figures say: a scrape after the mount went away has no series of it.
    const empty = new DaemonMetrics(() => ({ ...figures(), mounts: [] }));
    const after = await empty.text();
    expect(after).not.toContain('/mnt/a');
    expect(after).toContain('ondemand_mounts 0');
  });

  it('serves /metrics over HTTP, with process metrics', async () => {
    const m = new DaemonMetrics(figures, { defaultMetrics: true });
    const server = await serveMetrics('127.0.0.1:0', m);
    try {
      const addr = server.address();
      if (!addr || typeof addr === 'string') throw new Error('no port');
      const res = await fetch(`http://127.0.0.1:${addr.port}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/plain');
      const text = await res.text();
      expect(text).toContain('ondemand_cache_usage_bytes 123456');
      expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
      expect(text).toMatch(/^nodejs_heap_size_used_bytes \d+/m);
      expect((await fetch(`http://127.0.0.1:${addr.port}/`)).status).toBe(404);
    } finally {
      server.close();
      server.closeAllConnections();
    }
  });

  it('parses listen addresses', () => {
    expect(parseListenAddress('127.0.0.1:9469')).toEqual({ host: '127.0.0.1', port: 9469 });
    expect(parseListenAddress(':9469')).toEqual({ host: undefined, port: 9469 });
    expect(parseListenAddress('[::1]:9469')).toEqual({ host: '::1', port: 9469 });
  });
});

describe('timed fetcher', () => {
  it('counts latency, failures and requests stuck in flight', async () => {
    let clock = 0;
    const release: (() => void)[] = [];
    const inner: BlobFetcher = {
      source: 'fake',
      fetchRange: (_d, r) => new Promise<Buffer>((resolve, reject) => {
        if (r.offset < 0) reject(new Error('bad'));
        else release.push(() => resolve(Buffer.alloc(r.length)));
      }),
      fetchBlob: () => Promise.resolve(Buffer.alloc(0)),
      close: () => Promise.resolve(),
    };
    const f = new ObservedFetcher(inner, () => clock);
    const a = f.fetchRange('sha256:x', { offset: 0, length: 4 });
    clock = 5_000;
    const b = f.fetchRange('sha256:x', { offset: 4, length: 4 });
    clock = 12_000;
    expect(f.figures(10_000)).toMatchObject({ inFlight: 2, stalled: 1, oldestInFlightMs: 12_000, requests: 0 });
    release.shift()?.();
    await a;
    await expect(f.fetchRange('sha256:x', { offset: -1, length: 1 })).rejects.toThrow('bad');
    const fig = f.figures(10_000);
    expect(fig).toMatchObject({ inFlight: 1, stalled: 0, requests: 1, failed: 1 });
    // 12 s: in the 30 s bucket.
    expect(fig.latency.counts[fig.latency.boundsMs.indexOf(30_000)]).toBe(1);
    expect(fig.latency.totalMs).toBe(12_000);
    release.shift()?.();
    await b;
    expect(f.figures(10_000).inFlight).toBe(0);
  });
});

describe('cache stats: the prefetch share', () => {
  it('counts what background prefetch fetched apart from reads', async () => {
    const fx = makeBlobFixture({ size: 1024 * 1024, frameSize: 65536, seed: 7 });
    const { cache } = await freshCache({ maxMergeBytes: 256 * 1024 });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
    await blob.read(0, 100);
    const afterRead = blob.stats();
    expect(afterRead.bytesFetched).toBeGreaterThan(0);
    expect(afterRead.prefetchBytesFetched).toBe(0);
    await blob.prefetch();
    await blob.idle?.();
    // Counted once the frames are written: let the job's last callbacks run.
    await new Promise((r) => setTimeout(r, 10));
    const s = blob.stats();
    expect(s.prefetchRequestsFetched).toBeGreaterThan(0);
    expect(s.prefetchBytesFetched).toBe(s.bytesFetched - afterRead.bytesFetched);
    expect(s.prefetchRequestsFetched).toBe(s.requestsFetched - afterRead.requestsFetched);
    expect(cache.stats().prefetchBytesFetched).toBe(s.prefetchBytesFetched);
  });
});
