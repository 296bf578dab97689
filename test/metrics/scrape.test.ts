/**
 * The real daemon, started by `mount` with `metrics.address` from its environment: /metrics scraped
 * before and after reads through the mount moves as the reads do, agrees with `status --json`, and
 * comes back on the same address after a worker crash, with the restart counted.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { freePort } from '../helpers/registry.js';
import { cliBuilt, makeHarness, type Harness } from '../mount/harness.js';
import { buildImage, makeTree, sha } from '../mount/images.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


/** `name{labels} value` lines of a scrape, keyed by everything before the value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe.skipIf(!needs('metrics endpoint', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']))('the daemon\'s metrics endpoint', () => {
  let h: Harness;
  let tmp: { dir: string; remove: () => void };
  let ref: string;
  let url: string;

  beforeAll(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}/metrics`;
    h = makeHarness('metrics', { ONDEMAND_METRICS_ADDRESS: `127.0.0.1:${port}` });
    tmp = makeTempDir('metrics');
    makeTree(join(tmp.dir, 'tree'), { seed: 'metrics', bulkBytes: 512 * 1024 });
    ref = (await buildImage(h, join(tmp.dir, 'tree'), join(tmp.dir, 'layout'))).ref;
  });
  afterAll(async () => {
    await h.cleanup();
    tmp.remove();
  });

  const scrape = async (): Promise<Map<string, number>> => {
    const res = await fetch(url);
    expect(res.status).toBe(200);
    return samples(await res.text());
  };
  /**
   * Scrapes until the cache's counters (bytes and requests fetched, hits, misses) stay the same over
   * three scrapes 100 ms apart (read-ahead and prefetch callbacks trail the reads; a slow machine
   * takes longer), at most 20 s; returns the last scrape.
   */
  const settled = async (): Promise<Map<string, number>> => {
    const counters = (x: Map<string, number>): string => [...x].filter(([k]) => /_(fetched_bytes|fetch_requests|cache_hits|cache_misses)_total\{/.test(k)).map(([k, v]) => `${k}=${v}`).sort().join('\n');
    let last = await scrape();
    let same = 0;
    for (let i = 0; i < 200 && same < 3; i++) {
      await sleep(100);
      const next = await scrape();
      same = counters(next) === counters(last) ? same + 1 : 0;
      last = next;
    }
    return last;
  };

  it('counts fetched bytes, misses, hits and waits as files are read', async () => {
    const mp = h.mountpoint('m');
    await h.ok('mount', '--image', ref, mp);
    const m = `mountpoint="${mp}",image="${ref}"`;
    const before = await scrape();
    expect(before.get('ondemand_mounts')).toBe(1);
    expect(before.get(`ondemand_mount_fetched_bytes_total{${m},kind="demand"}`)).toBeDefined();
    expect(before.get('process_resident_memory_bytes')).toBeGreaterThan(0);

    const file = join(mp, 'data', 'nested', 'deeper', 'three-mib.bin');
    expect(sha(file)).toBe(sha(join(tmp.dir, 'tree', 'data', 'nested', 'deeper', 'three-mib.bin')));
    const mid = await scrape();
    const grew = (a: Map<string, number>, b: Map<string, number>, key: string): number => (b.get(key) ?? 0) - (a.get(key) ?? 0);
    // Random data does not compress: a cold 3 MiB file fetches about that much.
    expect(grew(before, mid, `ondemand_mount_fetched_bytes_total{${m},kind="demand"}`)).toBeGreaterThan(2 * 1024 * 1024);
    expect(grew(before, mid, `ondemand_mount_fetched_bytes_total{${m},kind="prefetch"}`)).toBe(0);
    expect(grew(before, mid, `ondemand_mount_fetch_requests_total{${m},kind="demand"}`)).toBeGreaterThan(0);
    expect(grew(before, mid, `ondemand_mount_cache_misses_total{${m}}`)).toBeGreaterThan(0);
    expect(grew(before, mid, `ondemand_mount_read_wait_seconds_count{${m}}`)).toBeGreaterThan(0);
    expect(grew(before, mid, `ondemand_mount_fetch_duration_seconds_count{${m}}`)).toBeGreaterThan(0);
    expect(grew(before, mid, 'ondemand_cache_usage_bytes')).toBeGreaterThan(2 * 1024 * 1024);
    expect(mid.get(`ondemand_mount_failed_reads_total{${m}}`)).toBe(0);
    expect(mid.get(`ondemand_mount_fetches_stalled{${m}}`)).toBe(0);

    // Another file: its frames came with the first file's read-ahead (a small image), so reading it misses
    // nothing: its reads are hits, or never reach us at all once the blob is complete (fanotify then lets
    // the kernel read the cache file without events). Wait for that read-ahead to be in first.
    await settled();
    expect(sha(join(mp, 'data', 'one-mib-plus-one.bin'))).toBe(sha(join(tmp.dir, 'tree', 'data', 'one-mib-plus-one.bin')));
    const after = await scrape();
    expect(grew(mid, after, `ondemand_mount_cache_hits_total{${m}}`)).toBeGreaterThanOrEqual(0);
    expect(grew(mid, after, `ondemand_mount_cache_misses_total{${m}}`)).toBe(0);
    expect(grew(mid, after, `ondemand_mount_fetched_bytes_total{${m},kind="demand"}`)).toBeGreaterThanOrEqual(0);
    // Per blob: the blobs' series add up to the mount's.
    const blobBytes = [...after].filter(([k]) => k.startsWith(`ondemand_blob_fetched_bytes_total{${m},blob=`)).reduce((n, [, v]) => n + v, 0);
    const mountBytes = (after.get(`ondemand_mount_fetched_bytes_total{${m},kind="demand"}`) ?? 0) + (after.get(`ondemand_mount_fetched_bytes_total{${m},kind="prefetch"}`) ?? 0);
    expect(blobBytes).toBe(mountBytes);

    // status --json reads the same figures (nothing is read meanwhile, so they agree).
    const again = await settled();
    const status = JSON.parse(await h.ok('status', '--json')) as {
      daemon: { workerRestarts: number; memory: { rssBytes: number }; metricsAddress: string };
      mounts: { mountpoint: string; bytesFetched: number; hits: number; misses: number; readWait: { counts: number[] }; fetch: { requests: number }; blobs: unknown[] }[];
      cache: { usageBytes: number; evictedBlobs: number };
    };
    const sm = status.mounts.find((x) => x.mountpoint === mp);
    expect(sm?.bytesFetched).toBe(mountBytes);
    expect(sm?.hits).toBe(again.get(`ondemand_mount_cache_hits_total{${m}}`));
    expect(sm?.misses).toBe(again.get(`ondemand_mount_cache_misses_total{${m}}`));
    expect(sm?.fetch.requests).toBe(again.get(`ondemand_mount_fetch_duration_seconds_count{${m}}`));
    expect(sm?.blobs.length).toBeGreaterThan(0);
    expect(status.daemon.memory.rssBytes).toBeGreaterThan(0);
    expect(status.daemon.metricsAddress).toBe(new URL(url).host);
    expect(status.cache.evictedBlobs).toBe(0);

    // A worker crash: the next worker serves the endpoint again and counts the restart.
    const workerPid = (JSON.parse(await h.ok('status', '--json')) as { daemon: { workerPid: number } }).daemon.workerPid;
    process.kill(workerPid, 'SIGKILL');
    let text = '';
    await sleep(500);
    for (let i = 0; i < 100 && !text.includes('ondemand_worker_restarts_total 1'); i++) {
      text = await fetch(url).then((r) => r.text(), () => '');
      if (!text.includes('ondemand_worker_restarts_total 1')) await sleep(100);
    }
    expect(text).toContain('ondemand_worker_restarts_total 1');
    expect(samples(text).get('ondemand_mounts')).toBe(1);

    await h.ok('umount', mp);
    expect((await scrape()).get('ondemand_mounts')).toBe(0);
  });

  it('counts what background prefetch fetched as kind="prefetch"', async () => {
    makeTree(join(tmp.dir, 'tree2'), { seed: 'metrics-prefetch', bulkBytes: 256 * 1024 });
    const image = await buildImage(h, join(tmp.dir, 'tree2'), join(tmp.dir, 'layout2'));
    const mp = h.mountpoint('p');
    await h.ok('mount', '--prefetch', '--image', image.ref, mp);
    const m = `mountpoint="${mp}",image="${image.ref}"`;
    for (let i = 0; i < 100; i++) {
      const status = JSON.parse(await h.ok('status', '--json')) as { mounts: { mountpoint: string; prefetch?: string }[] };
      if (status.mounts.find((x) => x.mountpoint === mp)?.prefetch !== 'running') break;
      await sleep(100);
    }
    // Counted once written; the last callbacks may trail the state by a moment.
    const s = await settled();
    const prefetched = s.get(`ondemand_mount_fetched_bytes_total{${m},kind="prefetch"}`) ?? 0;
    const demand = s.get(`ondemand_mount_fetched_bytes_total{${m},kind="demand"}`) ?? 0;
    expect(prefetched).toBeGreaterThan(0);
    // The whole image's data came by prefetch (nothing was read).
    expect(prefetched + demand).toBeGreaterThan(image.bytes / 2);
    expect(demand).toBe(0);
    await h.ok('umount', mp);
  });
});
