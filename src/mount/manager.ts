/**
 * The worker's mounts: making one (resolve → bootstrap → blobs → transport, every step undoable),
 * unmaking one, re-attaching to the supervisor's live mounts after a restart, and their statistics.
 */
import { TraceRecorder, saveWhenRecorded, traceFor, traceRanges } from './startup-trace.js';
import { randomBytes } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { bandwidthBudget } from '../cache/scheduler.js';
import { WAIT_BUCKETS_MS } from '../cache/stats.js';
import type { BlobStats, CacheBackend, CachedBlob } from '../cache/types.js';
import { ObservedFetcher } from '../fetch/observed.js';
import type { BlobFetcher } from '../fetch/types.js';
import type { BlobToc } from '../format/image/types.js';
import type { Credentials } from '../registry/credentials.js';
import type { ResolveOptions, ResolvedImage } from '../resolve/types.js';
import { reattachDone, transportFor } from '../transport/index.js';
import { failPoint } from '../transport/fail-point.js';
import type { Features } from '../transport/kernel-features.js';
import type { ActiveTransport, MountMode, Transport, TransportContext } from '../transport/types.js';
import { AuthError, MountError, NotFoundError, UnsupportedError, errorText } from '../util/errors.js';
import { logFor, log } from '../util/log.js';
import { UndoStack } from '../util/undo-stack.js';
import { namespacesMounting, readMountInfo } from '../util/mountinfo.js';
import { addHistogram, emptyHistogram, histogramDelta } from '../util/histogram.js';
import { settlesWithin } from '../util/with-timeout.js';
import { preloadImageSources, resolveImageRef } from './image-source.js';
import { chooseMode, modeUsable } from './mode-choice.js';
import { checkMountpoint, describeUsers, mountUsers, umountUnlessBusy, waitUsable, type ReservedDir } from './mountpoint.js';
import { resolvePrefetchPaths, type BlobRange } from './prefetch-paths.js';
import { DEFAULT_FETCH_DEADLINE_MS, type MountRecord, type MountRecordKeeper, type MountRequest, type MountResult, type MountStatus, type UmountResult, type BlobStatus } from './types.js';

interface ActiveMount {
  id: string;
  mountpoint: string;
  image: string;
  mode: MountMode;
  blobs: CachedBlob[];
  /** The blobs' digests (same order). */
  digests: string[];
  baseline: BlobStats[];
  /** The fetcher every blob of this mount fetches through, timed for status and metrics. */
  fetcher: ObservedFetcher;
  transport: ActiveTransport;
  undo: UndoStack;
  prefetch?: { state: 'running' | 'done' | 'failed'; abort: AbortController; error?: string };
}

/** How the daemon talks to registries for every mount (its configuration), whoever asks. */
export type RegistrySettings = Pick<ResolveOptions, 'mirrors' | 'retries'>;

export interface MountManagerOptions {
  /** Longest one fetch of image data may take before the read that needs it fails (default DEFAULT_FETCH_DEADLINE_MS). */
  fetchDeadlineMs?: number;
  /** Directories no mountpoint may be inside or above (the daemon's run dir and cache dir). */
  reserved?: readonly ReservedDir[];
  registry?: RegistrySettings;
  /** A fetch in flight longer than this counts as stalled in status (default STALLED_FETCH_MS). */
  stalledFetchMs?: number;
  /** Seconds of first reads a mount without a start-up trace records (0: none; default 0). */
  traceSeconds?: number;
}

/** A range request running this long is reported as stalled (hung I/O): well under the fetch deadline. */
export const STALLED_FETCH_MS = 10_000;

/** What a mount prefetches: `ranges` first (in order), then every blob if `whole`; `rate` caps it (0: the cache's default). */
interface PrefetchPlan {
  ranges: BlobRange[];
  whole: boolean;
  rate: number;
}

const ZERO: BlobStats = { hits: 0, misses: 0, bytesFetched: 0, requestsFetched: 0, mergedRequests: 0, framesPresent: 0, framesTotal: 0 };

export class MountManager {
  private readonly mounts = new Map<string, ActiveMount>();
  /** Mountpoints being mounted or unmounted right now: a second request for one is refused. */
  private readonly busy = new Set<string>();

  private readonly fetchDeadlineMs: number;
  private readonly reserved: readonly ReservedDir[];
  private readonly registry: RegistrySettings;
  private readonly stalledFetchMs: number;
  private readonly traceSeconds: number;

  /** `privateRoot`: where each mount's private directory (its FUSE mount) is made. */
  constructor(
    private readonly cache: CacheBackend,
    private readonly records: MountRecordKeeper,
    private readonly features: Features,
    private readonly privateRoot: string,
    options: MountManagerOptions = {},
  ) {
    this.fetchDeadlineMs = options.fetchDeadlineMs ?? DEFAULT_FETCH_DEADLINE_MS;
    this.reserved = options.reserved ?? [];
    this.registry = options.registry ?? {};
    this.stalledFetchMs = options.stalledFetchMs ?? STALLED_FETCH_MS;
    this.traceSeconds = options.traceSeconds ?? 0;
    preloadImageSources();
    // What the usual mode's mounts need (threads) starts now, off the first mount's clock.
    const usual = chooseMode(features).mode;
    if (usual !== null) transportFor(usual)?.prepare?.();
  }

  private pickTransport(requested: MountRequest['mode']): { transport: Transport; reason: string } {
    if (requested === 'auto') {
      const choice = chooseMode(this.features);
      if (!choice.mode) throw new UnsupportedError(choice.reason);
      return { transport: transportFor(choice.mode)!, reason: choice.reason };
    }
    const usable = modeUsable(requested, this.features);
    if (!usable.ok) throw new UnsupportedError(`--mode ${requested} cannot work here: ${usable.reason}`);
    return { transport: transportFor(requested)!, reason: `--mode ${requested}: ${usable.reason}` };
  }

  /** Opens, pins and snapshots every blob of the image (device-table order), each with its TOC from `tocs`. */
  private async openBlobs(resolved: ResolvedImage, fetcher: BlobFetcher, undo: UndoStack, tocs: Promise<BlobToc>[]): Promise<CachedBlob[]> {
    const blobs: CachedBlob[] = [];
    for (const [i, descriptor] of resolved.image.blobs.entries()) {
      const toc = await (tocs[i] as Promise<BlobToc>);
      const blob = await this.cache.openBlob(descriptor, { fetcher, toc, image: resolved.image.ref });
      // Pinned with its fetcher: this mount's fetches never go through a fetcher another mount closed.
      const unpin = blob.pin(fetcher);
      undo.push(`pin of blob ${descriptor.digest}`, unpin);
      blobs.push(blob);
    }
    return blobs;
  }

  private async prepare(
    ref: string,
    options: { insecure: boolean; credentials?: Credentials | null; blobs?: string[]; platform?: string; manifestDigest?: string },
    undo: UndoStack,
  ): Promise<{ resolved: ResolvedImage; bootstrapPath: string; blobs: CachedBlob[]; fetcher: ObservedFetcher }> {
    let resolved: ResolvedImage;
    try {
      resolved = await resolveImageRef(ref, {
        insecure: options.insecure,
        // Only the caller's credentials (none: anonymous): never the daemon's own environment or config.
        credentials: options.credentials ?? null,
        ...(this.cache.metadata ? { metadata: this.cache.metadata } : {}),
        ...(options.blobs && options.blobs.length > 0 ? { blobs: options.blobs } : {}),
        ...(options.platform ? { platform: options.platform } : {}),
        ...(options.manifestDigest ? { manifestDigest: options.manifestDigest } : {}),
        fetchDeadlineMs: this.fetchDeadlineMs,
        ...this.registry,
      });
    } catch (err) {
      if (err instanceof NotFoundError || err instanceof UnsupportedError || err instanceof AuthError) throw err;
      throw new NotFoundError(`cannot resolve image ${ref}: ${errorText(err)}`, { image: ref }, { cause: err });
    }
    undo.push(`fetcher for ${ref}`, () => resolved.fetcher.close());
    for (const w of resolved.warnings ?? []) logFor({ image: ref }).warn({ detail: w.detail, digest: w.digest }, w.message);
    // The TOCs load while the bootstrap does, and side by side: one round trip instead of 1 + blobs.
    const tocs = resolved.image.blobs.map((d) => resolved.loadToc(d));
    for (const t of tocs) t.catch(() => undefined); // awaited below, unless the bootstrap fails first
    const bootstrapPath = await this.cache.bootstrapPath(resolved.image.bootstrap.uncompressedDigest, () => resolved.loadBootstrap());
    const fetcher = new ObservedFetcher(resolved.fetcher);
    const blobs = await this.openBlobs(resolved, fetcher, undo, tocs);
    // Unwound after the transport stops serving and before the pins and the fetcher go: reads the kernel
    // made just before the unmount (async readahead) may still be fetching or storing their frames.
    undo.push(`in-flight fetches of ${ref}`, () => settleFetches(blobs, ref));
    return { resolved, bootstrapPath, blobs, fetcher };
  }

  async mount(req: MountRequest): Promise<MountResult> {
    const mountpoint = checkMountpoint(req.mountpoint, this.reserved);
    if (this.mounts.has(mountpoint) || this.busy.has(mountpoint)) {
      throw new MountError(`mountpoint ${mountpoint} is busy: an ondemand mount is there or being made`, { mountpoint });
    }
    const { transport, reason } = this.pickTransport(req.mode);
    this.busy.add(mountpoint);
    const id = randomBytes(6).toString('hex');
    const undo = new UndoStack();
    const mlog = logFor({ mountpoint, image: req.image, mode: transport.mode });
    try {
      const { resolved, bootstrapPath, blobs, fetcher } = await this.prepare(req.image, req, undo);
      // Resolved before anything is mounted: a bootstrap that cannot be read fails the mount cleanly.
      const paths = this.prefetchPlan(req.prefetchPaths, bootstrapPath, req.image, blobs.length);
      const digests = resolved.image.blobs.map((b) => b.digest);
      const manifestDigest = resolved.image.manifestDigest;
      // A start-up trace (given, kept from an earlier mount, or carried by the image) is fetched first;
      // without one kept here, this mount records one (this host's own start-up beats the image's).
      const trace = await traceFor(req.prefetchTrace, this.cache.metadata, manifestDigest, req.image, resolved.image.prefetchTrace);
      const traced = trace ? traceRanges(trace.trace, blobs, digests) : [];
      const recorder = (trace === undefined || trace.from === 'image') && this.traceSeconds > 0 && manifestDigest && this.cache.metadata ? new TraceRecorder(blobs, this.traceSeconds) : undefined;
      if (recorder && manifestDigest && this.cache.metadata) {
        const recording = saveWhenRecorded(recorder, this.cache.metadata, manifestDigest, digests, req.image);
        undo.push(`start-up trace of ${req.image}`, () => recording.flush());
      }
      const baseline = blobs.map((b) => b.stats());
      await this.records.begin({
        id, mountpoint, image: req.image, mode: transport.mode, prefetch: req.prefetch, ...(req.allowDevices ? { allowDevices: true } : {}), createdAt: new Date().toISOString(),
        ...(req.prefetchPaths?.length ? { prefetchPaths: req.prefetchPaths } : {}), ...(req.prefetchRate ? { prefetchRate: req.prefetchRate } : {}),
        resolve: {
          insecure: req.insecure, ...(req.blobs?.length ? { blobs: req.blobs } : {}), ...(req.platform ? { platform: req.platform } : {}),
          manifestDigest: resolved.image.manifestDigest,
        },
      }, req.credentials ?? undefined);
      // Whatever is left of the mount's kernel objects (the steps below undo them one by one first).
      undo.push(`record of ${mountpoint}`, () => this.records.end(id));
      const ctx = this.context(id, mountpoint, req.image, bootstrapPath, recorder ? recorder.wrap() : blobs, undo, { prefetch: req.prefetch, allowDevices: req.allowDevices === true });
      const active = await transport.mount(ctx);
      failPoint('before-usable');
      await waitUsable(mountpoint);
      await this.records.mounted(id, resolved.image.manifestDigest);
      const m: ActiveMount = { id, mountpoint, image: req.image, mode: transport.mode, blobs, digests, baseline, fetcher, transport: active, undo };
      this.mounts.set(mountpoint, m);
      this.startPrefetch(m, { ranges: [...traced, ...paths.ranges], whole: req.prefetch, rate: req.prefetchRate ?? 0 });
      mlog.info({ reason, manifestDigest, traceRanges: traced.length, traceFrom: trace?.from, recordingTrace: recorder !== undefined }, 'mounted');
      const warnings = [...(resolved.warnings ?? []).map((w) => w.message), ...paths.warnings];
      return { mountpoint, image: req.image, mode: transport.mode, reason, ...(warnings.length > 0 ? { warnings } : {}) };
    } catch (err) {
      mlog.warn({ err: errorText(err) }, 'mount failed; undoing what was made');
      const failures = await undo.unwind();
      if (failures.length > 0) mlog.error({ failures }, 'could not undo everything');
      throw err;
    } finally {
      this.busy.delete(mountpoint);
    }
  }

  private context(
    id: string, mountpoint: string, image: string, bootstrapPath: string, blobs: CachedBlob[], undo: UndoStack,
    options: { prefetch: boolean; allowDevices: boolean },
  ): TransportContext {
    return {
      id, mountpoint, image, bootstrapPath, blobs,
      kernel: this.records.broker(id, undo),
      features: this.features,
      privateDir: join(this.privateRoot, id),
      ...options,
    };
  }

  /** The `--prefetch-paths` entries as blob ranges; entries that match nothing become warnings, never errors. */
  private prefetchPlan(patterns: string[] | undefined, bootstrapPath: string, image: string, blobCount: number): { ranges: BlobRange[]; warnings: string[] } {
    if (!patterns || patterns.length === 0) return { ranges: [], warnings: [] };
    const r = resolvePrefetchPaths(bootstrapPath, patterns, image);
    const ranges = r.ranges.filter((x) => x.blob < blobCount);
    const warnings = r.unmatched.map((p) => `prefetch path ${p} matches no file with data in the image`);
    const plog = logFor({ image });
    for (const w of warnings) plog.warn(w);
    plog.info({ patterns: patterns.length, files: r.files, ranges: ranges.length, bytes: ranges.reduce((n, x) => n + x.length, 0) }, 'prefetch paths resolved');
    return { ranges, warnings };
  }

  /**
   * The listed ranges first, strictly in list order: consecutive ranges of one blob go to that blob's
   * prefetch together (its workers merge them), the next group starts when they are in. Then, with
   * `whole`, every blob at once. One mount's blobs and steps share its rate as one budget.
   */
  private startPrefetch(m: ActiveMount, plan: PrefetchPlan): void {
    if (plan.ranges.length === 0 && !plan.whole) return;
    const abort = new AbortController();
    m.prefetch = { state: 'running', abort };
    // One budget for the whole mount, every step and blob: a blob done early leaves its share to the others.
    const options = { signal: abort.signal, ...(plan.rate > 0 ? { budget: bandwidthBudget(plan.rate) } : {}) };
    const run = async (): Promise<void> => {
      let i = 0;
      while (i < plan.ranges.length) {
        const blob = plan.ranges[i]!.blob;
        const group: { offset: number; length: number }[] = [];
        for (; i < plan.ranges.length && plan.ranges[i]!.blob === blob; i++) group.push({ offset: plan.ranges[i]!.offset, length: plan.ranges[i]!.length });
        await m.blobs[blob]!.prefetch({ ...options, ranges: group, rangesOnly: true });
      }
      if (!plan.whole) return;
      await Promise.all(m.blobs.map((b) => b.prefetch(options)));
    };
    run().then(
      async () => {
        if (abort.signal.aborted) return;
        await m.transport.blobsComplete?.().catch((err: unknown) => log.warn({ mountpoint: m.mountpoint, err: errorText(err) }, 'switching to the complete blobs failed'));
        if (m.prefetch) m.prefetch.state = 'done';
      },
      (err: unknown) => {
        if (m.prefetch) Object.assign(m.prefetch, { state: 'failed', error: errorText(err) });
        if (!abort.signal.aborted) log.warn({ mountpoint: m.mountpoint, err: errorText(err) }, 'prefetch failed');
      },
    );
  }

  /** Refuses a mount that processes use (nothing is undone) unless `lazy`, which detaches it anyway. */
  async umount(path: string, options: { lazy?: boolean } = {}): Promise<UmountResult> {
    const m = this.find(path);
    if (!m) throw new MountError(`${path} is not mounted by ondemand`, { mountpoint: path });
    if (this.busy.has(m.mountpoint)) throw new MountError(`${m.mountpoint} is being mounted or unmounted`, { mountpoint: m.mountpoint });
    this.busy.add(m.mountpoint);
    try {
      const users = options.lazy ? mountUsers(m.mountpoint) : [];
      const mounted = readMountInfo().findLast((e) => e.mountpoint === m.mountpoint);
      if (!options.lazy) await umountUnlessBusy(m.mountpoint);
      m.prefetch?.abort.abort();
      const failures = await m.undo.unwind();
      this.mounts.delete(m.mountpoint);
      if (failures.length > 0) throw new MountError(`unmounted ${m.mountpoint} with errors: ${failures.join('; ')}`, { mountpoint: m.mountpoint });
      const elsewhere = mounted ? namespacesMounting(mounted.device, mounted.fstype) : [];
      const still = [
        ...(users.length > 0 ? [describeUsers(m.mountpoint, users)] : []),
        ...(elsewhere.length > 0 ? [`mounted in ${elsewhere.length} other mount namespace(s) (pid ${elsewhere.join(', ')})`] : []),
      ];
      return { mountpoint: m.mountpoint, ...(still.length > 0 ? { detachedFrom: still.join('; ') } : {}) };
    } finally {
      this.busy.delete(m.mountpoint);
    }
  }

  async umountAll(): Promise<void> {
    for (const mp of [...this.mounts.keys()]) {
      await this.umount(mp, { lazy: true }).catch((err: unknown) => log.warn({ mountpoint: mp, err: errorText(err) }, 'umount failed'));
    }
  }

  private find(path: string): ActiveMount | undefined {
    const direct = this.mounts.get(path);
    if (direct) return direct;
    try {
      return this.mounts.get(realpathSync(path));
    } catch {
      return undefined;
    }
  }

  /**
   * After a worker restart: serve every mount the supervisor still holds. A mount caught half-made is
   * undone; one that cannot be served again is torn down (its readers get errors, never stale zeros).
   */
  async reattach(records: (MountRecord & { credentials?: Credentials })[]): Promise<void> {
    for (const r of records) {
      const rlog = logFor({ mountpoint: r.mountpoint, image: r.image });
      if (r.state !== 'mounted') {
        rlog.warn('undoing a mount the previous worker left half-made');
        await this.records.end(r.id).catch((err: unknown) => rlog.error({ err: errorText(err) }, 'undo failed'));
        continue;
      }
      const undo = new UndoStack();
      try {
        const transport = transportFor(r.mode);
        if (!transport?.reattach) throw new UnsupportedError(`the ${r.mode} transport cannot re-attach`);
        // Pinned to the manifest it mounted (its tag may name another image by now), which the cache
        // keeps: a re-attach needs no registry.
        const { resolved, bootstrapPath, blobs, fetcher } = await this.prepare(r.image, {
          insecure: r.resolve.insecure,
          credentials: r.credentials ?? null,
          ...(r.resolve.blobs ? { blobs: r.resolve.blobs } : {}),
          ...(r.resolve.platform ? { platform: r.resolve.platform } : {}),
          ...(r.resolve.manifestDigest ? { manifestDigest: r.resolve.manifestDigest } : {}),
        }, undo);
        const ctx = this.context(r.id, r.mountpoint, r.image, bootstrapPath, blobs, undo, { prefetch: r.prefetch, allowDevices: r.allowDevices === true });
        const active = await transport.reattach(ctx, r.objects);
        // Unmount later = unmake the recorded kernel objects first, then stop serving (pushed by reattach).
        undo.push(`record of ${r.mountpoint}`, () => this.records.end(r.id));
        const m: ActiveMount = {
          id: r.id, mountpoint: r.mountpoint, image: r.image, mode: r.mode, blobs, digests: resolved.image.blobs.map((b) => b.digest),
          baseline: blobs.map(() => ZERO), fetcher, transport: active, undo,
        };
        this.mounts.set(r.mountpoint, m);
        // The list is resolved again from the bootstrap (cached): what is present already is skipped.
        // A list that cannot be resolved now costs the ordering, never the mount that is serving.
        let ranges: BlobRange[] = [];
        try {
          ranges = this.prefetchPlan(r.prefetchPaths, bootstrapPath, r.image, blobs.length).ranges;
        } catch (err) {
          rlog.warn({ err: errorText(err) }, 'prefetch paths not resolved after a worker restart; prefetching without them');
        }
        this.startPrefetch(m, { ranges, whole: r.prefetch, rate: r.prefetchRate ?? 0 });
        rlog.info('re-attached after a worker restart');
      } catch (err) {
        rlog.error({ err: errorText(err) }, 'cannot re-attach: tearing the mount down');
        await undo.unwind();
        await this.records.end(r.id).catch(() => undefined);
      }
    }
    reattachDone();
  }

  /** Every mount's figures since it was made: `status` and the metrics endpoint both read these. */
  status(): { mounts: MountStatus[] } {
    const mounts: MountStatus[] = [];
    for (const m of this.mounts.values()) {
      const blobs = m.blobs.map((b, i) => blobStatus(m.digests[i] ?? b.blobId, b, m.baseline[i] ?? ZERO));
      const sum = (k: keyof Omit<BlobStatus, 'digest' | 'framesPresent' | 'framesTotal'>): number => blobs.reduce((n, b) => n + (b[k] ?? 0), 0);
      const readWait = emptyHistogram(WAIT_BUCKETS_MS);
      m.blobs.forEach((b, i) => {
        const now = b.stats().waitHistogram;
        if (now) addHistogram(readWait, histogramDelta(now, m.baseline[i]?.waitHistogram));
      });
      const t = m.transport.stats();
      mounts.push({
        mountpoint: m.mountpoint, image: m.image, mode: m.mode,
        bytesFetched: sum('bytesFetched'), requests: sum('requests'), hits: sum('hits'), misses: sum('misses'), failedReads: sum('failedReads'),
        changedBehind: sum('changedBehind'),
        prefetchBytesFetched: sum('prefetchBytesFetched'), prefetchRequests: sum('prefetchRequests'),
        bytesPresent: sum('bytesPresent'), bytesTotal: sum('bytesTotal'),
        ...(t.passthroughOpens !== undefined ? { passthroughOpens: t.passthroughOpens } : {}),
        ...(t.blobsDirect !== undefined ? { blobsDirect: t.blobsDirect } : {}),
        ...(m.prefetch ? { prefetch: m.prefetch.state } : {}),
        ...(m.prefetch?.error !== undefined ? { prefetchError: m.prefetch.error } : {}),
        readWait,
        fetch: m.fetcher.figures(this.stalledFetchMs),
        blobs,
      });
    }
    return { mounts };
  }
}

/** A blob's counters since `base` (taken when the mount was made: a shared blob's earlier traffic is not this mount's). */
function blobStatus(digest: string, blob: CachedBlob, base: BlobStats): BlobStatus {
  const now = blob.stats();
  // Whole frames: every frame but the last is frameSize long, so this is exact but for a present last frame.
  const bytesPresent = now.framesPresent >= now.framesTotal ? blob.size : Math.min(blob.size, now.framesPresent * blob.toc.frameSize);
  const d = (k: 'failedReads' | 'changedBehind' | 'prefetchBytesFetched' | 'prefetchRequestsFetched'): number => (now[k] ?? 0) - (base[k] ?? 0);
  return {
    digest,
    bytesFetched: now.bytesFetched - base.bytesFetched,
    requests: now.requestsFetched - base.requestsFetched,
    prefetchBytesFetched: d('prefetchBytesFetched'),
    prefetchRequests: d('prefetchRequestsFetched'),
    hits: now.hits - base.hits,
    misses: now.misses - base.misses,
    failedReads: d('failedReads'),
    changedBehind: d('changedBehind'),
    framesPresent: now.framesPresent,
    framesTotal: now.framesTotal,
    bytesPresent,
    bytesTotal: blob.size,
  };
}

/** Longest an unmount waits for fetches its reads started (a stalled registry must not block it). */
export const SETTLE_FETCHES_MS = 5_000;

/**
 * Waits until no fetch of `blobs` is in flight, so every frame already fetched is stored and marked
 * present (the next mount finds it) and no queued fetch is left to use the fetcher about to be closed.
 */
export async function settleFetches(blobs: readonly CachedBlob[], image: string, limitMs = SETTLE_FETCHES_MS): Promise<void> {
  const started = Date.now();
  const idle = Promise.all(blobs.map((b) => b.idle?.() ?? Promise.resolve()));
  if (!(await settlesWithin(idle, limitMs))) {
    log.warn({ image, waitedMs: limitMs }, 'fetches still running at unmount; frames they bring may have to be fetched again');
  } else if (Date.now() - started > 100) {
    log.info({ image, waitedMs: Date.now() - started }, 'waited for in-flight fetches before unmounting');
  }
}
