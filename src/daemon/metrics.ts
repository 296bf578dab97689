/**
 * The Prometheus endpoint of the worker (`metrics.address`): a registry of its own whose metrics are
 * filled at each scrape from the figures `status` reports (status.ts), so the counters the cache
 * keeps anyway are the only bookkeeping and a read pays nothing for metrics. docs/metrics.md lists
 * every metric.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricType } from 'prom-client';
import { ConfigError, errorText } from '../util/errors.js';
import type { MsHistogram } from '../util/histogram.js';
import { log } from '../util/log.js';
import type { StatusResult } from './protocol.js';

type Labels<L extends string> = Partial<Record<L, string>>;
type Sample<L extends string> = [Labels<L>, number];
type MountLabel = 'mountpoint' | 'image';
type BlobLabel = MountLabel | 'blob';
type KindLabel = 'kind';

const MOUNT: MountLabel[] = ['mountpoint', 'image'];
const BLOB: BlobLabel[] = ['mountpoint', 'image', 'blob'];

/**
 * A histogram whose buckets are counted elsewhere (the cache's wait histogram, the timed fetcher):
 * prom-client's Histogram only takes one observation at a time, so this one hands the registry the
 * bucket counts of the current figures instead. Same text as any histogram: cumulative `_bucket{le}`,
 * `_sum` and `_count`, in seconds.
 */
/** prom-client's types call a metric's type an enum; its registry prints the text it holds. */
const HISTOGRAM = 'histogram' as unknown as MetricType;

class CountedHistogram<L extends string> extends Histogram<L> {
  constructor(private readonly metricName: string, private readonly metricHelp: string, labelNames: L[], private readonly read: () => [Labels<L>, MsHistogram][]) {
    // Not into prom-client's global registry (its default): only into ours.
    super({ name: metricName, help: metricHelp, labelNames, buckets: [], registers: [] });
  }

  /** What the registry formats (it prefers this to get() for the text format). */
  getForPromString(): ReturnType<Histogram<L>['get']> {
    return this.get();
  }

  override get(): ReturnType<Histogram<L>['get']> {
    type Value = Awaited<ReturnType<Histogram<L>['get']>>['values'][number];
    const values: Value[] = [];
    const name = this.metricName;
    for (const [labels, h] of this.read()) {
      let acc = 0;
      h.boundsMs.forEach((bound, i) => {
        acc += h.counts[i] ?? 0;
        values.push({ labels: { ...labels, le: bound / 1000 }, value: acc, metricName: `${name}_bucket` });
      });
      const count = acc + (h.counts[h.boundsMs.length] ?? 0);
      values.push({ labels: { ...labels, le: '+Inf' }, value: count, metricName: `${name}_bucket` });
      values.push({ labels, value: h.totalMs / 1000, metricName: `${name}_sum` });
      values.push({ labels, value: count, metricName: `${name}_count` });
    }
    return Promise.resolve({ name, help: this.metricHelp, type: HISTOGRAM, aggregator: 'sum', values, collect: () => undefined });
  }
}

export interface DaemonMetricsOptions {
  /** prom-client's process and Node.js metrics (memory, CPU, event loop, GC) too (the daemon: yes). */
  defaultMetrics?: boolean;
}

/** The registry, filled from `source()` once per scrape. */
export class DaemonMetrics {
  readonly registry = new Registry();
  private figures: StatusResult | null = null;

  constructor(private readonly source: () => StatusResult, options: DaemonMetricsOptions = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    this.define();
  }

  /** The exposition text of the figures now. */
  async text(): Promise<string> {
    // Every collect below runs synchronously inside metrics(), so one snapshot serves the whole scrape.
    this.figures = this.source();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private now(): StatusResult {
    if (!this.figures) this.figures = this.source();
    return this.figures;
  }

  private counter<L extends string>(name: string, help: string, labelNames: L[], samples: (s: StatusResult) => Sample<L>[]): void {
    const c: Counter<L> = new Counter<L>({
      name, help, labelNames, registers: [this.registry],
      collect: () => {
        c.reset();
        for (const [labels, v] of samples(this.now())) c.inc(labels, Math.max(0, v));
      },
    });
  }

  private gauge<L extends string>(name: string, help: string, labelNames: L[], samples: (s: StatusResult) => Sample<L>[]): void {
    const g: Gauge<L> = new Gauge<L>({
      name, help, labelNames, registers: [this.registry],
      collect: () => {
        g.reset();
        for (const [labels, v] of samples(this.now())) g.set(labels, v);
      },
    });
  }

  private histogram<L extends string>(name: string, help: string, labelNames: L[], read: (s: StatusResult) => [Labels<L>, MsHistogram][]): void {
    this.registry.registerMetric(new CountedHistogram<L>(name, help, labelNames, () => read(this.now())));
  }

  private define(): void {
    const mountLabels = (m: StatusResult['mounts'][number]): Labels<MountLabel> => ({ mountpoint: m.mountpoint, image: m.image });
    const perMount = (f: (m: StatusResult['mounts'][number]) => number) => (s: StatusResult): Sample<MountLabel>[] =>
      s.mounts.map((m) => [mountLabels(m), f(m)]);
    const split = (f: (m: StatusResult['mounts'][number]) => [number, number]) => (s: StatusResult): Sample<MountLabel | KindLabel>[] =>
      s.mounts.flatMap((m) => {
        const [total, prefetch] = f(m);
        return [[{ ...mountLabels(m), kind: 'demand' }, total - prefetch], [{ ...mountLabels(m), kind: 'prefetch' }, prefetch]];
      });
    type Blob = StatusResult['mounts'][number]['blobs'][number];
    const blobSamples = (f: (b: Blob) => number) => (s: StatusResult): Sample<BlobLabel>[] =>
      s.mounts.flatMap((m) => m.blobs.map((b): Sample<BlobLabel> => [{ ...mountLabels(m), blob: b.digest }, f(b)]));
    const blobSplit = (f: (b: Blob) => [number, number]) => (s: StatusResult): Sample<BlobLabel | KindLabel>[] =>
      s.mounts.flatMap((m) => m.blobs.flatMap((b): Sample<BlobLabel | KindLabel>[] => {
        const [total, prefetch] = f(b);
        const l = { ...mountLabels(m), blob: b.digest };
        return [[{ ...l, kind: 'demand' }, total - prefetch], [{ ...l, kind: 'prefetch' }, prefetch]];
      }));

    // Per mount: since it was made.
    this.gauge('ondemand_mounts', 'Images mounted by this daemon.', [], (s) => [[{}, s.mounts.length]]);
    this.counter('ondemand_mount_fetched_bytes_total', 'Bytes fetched (stored, compressed) for a mount\'s blobs, by who asked: reads (demand, read-ahead included) or background prefetch.',
      [...MOUNT, 'kind'], split((m) => [m.bytesFetched, m.prefetchBytesFetched]));
    this.counter('ondemand_mount_fetch_requests_total', 'Range requests made for a mount\'s blobs, by who asked.',
      [...MOUNT, 'kind'], split((m) => [m.requests, m.prefetchRequests]));
    this.counter('ondemand_mount_cache_hits_total', 'Reads of a mount served from the cache.', MOUNT, perMount((m) => m.hits));
    this.counter('ondemand_mount_cache_misses_total', 'Reads of a mount that needed a fetch.', MOUNT, perMount((m) => m.misses));
    this.counter('ondemand_mount_failed_reads_total', 'Reads of a mount answered with an error (EIO).', MOUNT, perMount((m) => m.failedReads));
    this.counter('ondemand_mount_cache_changed_total', 'Times another process changed a cache data file of the mount while served.', MOUNT, perMount((m) => m.changedBehind ?? 0));
    this.counter('ondemand_mount_fetch_failures_total', 'Range requests of a mount that failed (after the registry client\'s retries).', MOUNT, perMount((m) => m.fetch.failed));
    this.gauge('ondemand_mount_fetches_in_flight', 'Range requests of a mount running now.', MOUNT, perMount((m) => m.fetch.inFlight));
    this.gauge('ondemand_mount_fetches_stalled', 'Range requests of a mount running for longer than 10 s (hung I/O: reads wait on them).', MOUNT, perMount((m) => m.fetch.stalled));
    this.histogram('ondemand_mount_read_wait_seconds', 'How long reads of a mount that missed waited for their frames.', MOUNT,
      (s) => s.mounts.map((m) => [mountLabels(m), m.readWait]));
    this.histogram('ondemand_mount_fetch_duration_seconds', 'How long a mount\'s range requests took (retries included), those that succeeded.', MOUNT,
      (s) => s.mounts.map((m) => [mountLabels(m), m.fetch.latency]));

    // Per blob of a mounted image (bounded: one series per blob of each mount).
    this.counter('ondemand_blob_fetched_bytes_total', 'Bytes fetched for one blob of a mount, by who asked.', [...BLOB, 'kind'],
      blobSplit((b) => [b.bytesFetched, b.prefetchBytesFetched]));
    this.counter('ondemand_blob_fetch_requests_total', 'Range requests for one blob of a mount, by who asked.', [...BLOB, 'kind'],
      blobSplit((b) => [b.requests, b.prefetchRequests]));
    this.counter('ondemand_blob_cache_hits_total', 'Reads of one blob of a mount served from the cache.', BLOB, blobSamples((b) => b.hits));
    this.counter('ondemand_blob_cache_misses_total', 'Reads of one blob of a mount that needed a fetch.', BLOB, blobSamples((b) => b.misses));
    this.counter('ondemand_blob_failed_reads_total', 'Reads of one blob of a mount that failed.', BLOB, blobSamples((b) => b.failedReads));
    this.gauge('ondemand_blob_frames_present', 'Frames of the blob in the cache now.', BLOB, blobSamples((b) => b.framesPresent));
    this.gauge('ondemand_blob_frames', 'Frames of the blob.', BLOB, blobSamples((b) => b.framesTotal));

    // The cache as a whole: since the worker opened it.
    this.gauge('ondemand_cache_usage_bytes', 'Bytes the cache directory uses.', [], (s) => [[{}, s.cache.usageBytes]]);
    this.gauge('ondemand_cache_max_size_bytes', 'The cache\'s size limit (cache.max_size; 0: none).', [], (s) => [[{}, s.cache.maxSizeBytes ?? 0]]);
    this.counter('ondemand_cache_evicted_blobs_total', 'Blobs evicted to keep the cache under its size limit.', [], (s) => [[{}, s.cache.evictedBlobs]]);
    this.counter('ondemand_cache_hits_total', 'Reads served from the cache, every blob.', [], (s) => [[{}, s.cache.hits]]);
    this.counter('ondemand_cache_misses_total', 'Reads that needed a fetch, every blob.', [], (s) => [[{}, s.cache.misses]]);
    this.counter('ondemand_cache_failed_reads_total', 'Reads answered with an error, every blob.', [], (s) => [[{}, s.cache.failedReads]]);
    this.counter('ondemand_cache_fetched_bytes_total', 'Bytes fetched, every blob, by who asked.', ['kind'], (s) => [
      [{ kind: 'demand' }, s.cache.bytesFetched - s.cache.prefetchBytesFetched], [{ kind: 'prefetch' }, s.cache.prefetchBytesFetched]]);
    this.counter('ondemand_cache_fetch_requests_total', 'Range requests, every blob, by who asked.', ['kind'], (s) => [
      [{ kind: 'demand' }, s.cache.requestsFetched - s.cache.prefetchRequestsFetched], [{ kind: 'prefetch' }, s.cache.prefetchRequestsFetched]]);

    this.counter('ondemand_worker_restarts_total', 'Times the supervisor restarted the worker (each a crash it recovered from).', [],
      (s) => [[{}, s.daemon.workerRestarts]]);
  }
}

/** HOST:PORT, [V6]:PORT or :PORT (every interface) into what listen() takes. */
export function parseListenAddress(address: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]*)):([0-9]{1,5})$/.exec(address.trim());
  if (!m) throw new ConfigError(`bad metrics address ${JSON.stringify(address)}: use HOST:PORT`, { path: address });
  const host = m[1] ?? (m[2] ? m[2] : undefined);
  return { host, port: Number(m[3]) };
}

/**
 * Serves GET /metrics on `address`. Resolves once listening; rejects when it cannot listen (the
 * caller logs it and serves mounts anyway: metrics are never a reason not to serve).
 */
export async function serveMetrics(address: string, metrics: DaemonMetrics): Promise<Server> {
  const { host, port } = parseListenAddress(address);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('ondemand: metrics are at /metrics\n');
      return;
    }
    metrics.text().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (err: unknown) => {
        log.warn({ err: errorText(err) }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${errorText(err)}\n`);
      },
    );
  });
  // Scrapers keep connections open: they must not keep a stopping worker alive.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.warn({ err: errorText(err) }, 'metrics endpoint error'));
  return server;
}
