/**
 * `ondemand convert SRC DST`: an ordinary OCI/Docker image (registry or `oci:` layout; tar, gzip or
 * zstd layers) → an ondemand image (erofs bootstrap + one framed blob per source layer), written to
 * a registry or an `oci:` layout. A multi-platform source becomes an index of converted manifests
 * (or one manifest with `platform`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FormatError } from '../util/errors.js';
import { MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST } from '../format/image/media-types.js';
import { INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, parseImageIndex, parseImageManifest, type FetchedManifest } from '../registry/manifest.js';
import { formatPlatform, hostPlatform, parsePlatform, selectPlatform, type Platform } from '../registry/platform.js';
import { convertManifest, type BuildSettings, type ConvertLimits, type ProgressEvent } from './convert-image.js';
import { openDestination, type Destination } from './destination.js';
import type { GrowingBlob } from '../build/growing-blob.js';
import { openImageSource, type SourceOptions } from './image-source.js';
import type { StartupTrace } from '../format/image/trace.js';
import { ondemandManifestBytes, packBootstrap, sha256, type OciDescriptor } from './ondemand-manifest.js';

export { readTar, type TarEntry, type TarEntryType, type TarLimits, DEFAULT_TAR_LIMITS } from './tar.js';
export { openLayerStream, DEFAULT_BOMB_LIMITS, type BombLimits } from './layer-stream.js';
export { LayerApplier, emptyRoot, emptyStats, toSourceTree, type MergedDir, type MergeStats } from './merge.js';
export type { ProgressEvent } from './convert-image.js';

export interface ConvertOptions extends SourceOptions, BuildSettings {
  /** Parent of the temporary work directory (default $TMPDIR or /var/tmp). */
  workDir?: string;
  /** Convert only this platform of a multi-platform source (`os/arch[/variant]`, or `host`). Default: all. */
  platform?: string;
  limits?: Partial<ConvertLimits>;
  progress?: (e: ProgressEvent & { platform?: string }) => void;
  /** Keep the work directory (debugging). */
  keepWork?: boolean;
  /** A start-up trace every converted manifest carries (`convert --prefetch-trace FILE`). */
  prefetchTrace?: StartupTrace;
  /** PATCH chunk size of data blobs uploaded to a registry (default the registry client's, 16 MiB). */
  uploadChunkSize?: number;
}

export interface ConvertedPlatform {
  platform?: string;
  manifestDigest: string;
  manifestSize: number;
  sourceManifest: string;
  sourceLayers: number;
  blobs: { digest: string; size: number; uncompressedSize: number; frames: number }[];
  frames: number;
  bootstrap: { digest: string; size: number; uncompressedSize: number };
  files: number;
  fileBytes: number;
  storedChunks: number;
  dedupedChunks: number;
  whiteouts: number;
  hardLinks: number;
}

export interface ConvertResult {
  source: string;
  destination: string;
  /** Digest, media type and size of what DST now names (a manifest, or an index). */
  digest: string;
  mediaType: string;
  size: number;
  platforms: ConvertedPlatform[];
  seconds: number;
}

export async function convertImage(src: string, dst: string, options: ConvertOptions = {}): Promise<ConvertResult> {
  const started = Date.now();
  const source = openImageSource(src, options);
  let dest: Destination | undefined;
  const work = await mkdtemp(join(options.workDir ?? process.env.TMPDIR ?? '/var/tmp', 'ondemand-convert-'));
  try {
    dest = openDestination(dst, options);
    const top = await source.top();
    const limits: ConvertLimits = { bomb: options.limits?.bomb ?? {}, tar: options.limits?.tar ?? {} };
    const progress = options.progress ?? (() => undefined);

    let targets: { fetched: FetchedManifest; platform?: Platform }[];
    if (MANIFEST_MEDIA_TYPES.has(top.mediaType)) {
      targets = [{ fetched: top }];
    } else if (INDEX_MEDIA_TYPES.has(top.mediaType)) {
      const index = parseImageIndex(top.bytes, top.mediaType, source.name);
      const entries = index.manifests.filter((m) => m.platform !== undefined && m.platform.os !== 'unknown' && MANIFEST_MEDIA_TYPES.has(m.mediaType));
      const wanted = options.platform === 'host' ? hostPlatform() : options.platform !== undefined ? parsePlatform(options.platform) : undefined;
      const chosen = wanted !== undefined ? [selectPlatform(entries, wanted, source.name)] : entries;
      if (chosen.length === 0) throw new FormatError(`${source.name}: the index lists no image manifests`, { image: source.name });
      targets = [];
      for (const e of chosen) targets.push({ fetched: await source.manifest(e.digest), ...(e.platform ? { platform: e.platform } : {}) });
    } else {
      throw new FormatError(`${source.name} has a manifest of unsupported media type "${top.mediaType}"`, { image: source.name });
    }

    const platforms: ConvertedPlatform[] = [];
    const descriptors: OciDescriptor[] = [];
    let last: { bytes: Buffer; descriptor: OciDescriptor } | undefined;
    for (const [i, t] of targets.entries()) {
      const platformText = t.platform ? formatPlatform(t.platform) : undefined;
      const manifest = parseImageManifest(t.fetched.bytes, t.fetched.mediaType, source.name);
      // A registry destination takes each data blob while it is built (the upload overlaps the build).
      const uploads = new Map<string, Promise<void>>();
      const startUpload = dest.startBlobUpload?.bind(dest);
      const onBlob = startUpload === undefined ? undefined : (blob: GrowingBlob): void => {
        const upload = startUpload(blob, source.name);
        upload.catch(() => undefined); // awaited below, or after a failed build (which reports itself)
        uploads.set(blob.path, upload);
      };
      let converted: Awaited<ReturnType<typeof convertManifest>>;
      try {
        converted = await convertManifest(source, manifest, join(work, `image-${i}`), options, limits, (e) => progress({ ...e, ...(platformText ? { platform: platformText } : {}) }), onBlob);
      } catch (err) {
        // The build's error is the one to report; the sessions are cancelled before the work files go.
        await Promise.allSettled(uploads.values());
        throw err;
      }
      await settleAll(uploads.values());
      const { built } = converted;
      for (const b of built.blobs) if (!uploads.has(b.path)) await dest.putBlobFile(b.descriptor.digest, b.path, b.descriptor.size);
      await dest.putBlobBytes(converted.config.digest, converted.configBytes);
      const boot = packBootstrap(built.bootstrap);
      await dest.putBlobBytes(boot.descriptor.digest, boot.stored);
      const bytes = ondemandManifestBytes(converted.config, built.blobs.map((b) => b.descriptor), boot, built.chunkSize, t.fetched.digest, options.prefetchTrace);
      const descriptor: OciDescriptor = { mediaType: MEDIA_TYPE_OCI_MANIFEST, digest: sha256(bytes), size: bytes.length };
      if (t.platform) descriptor.platform = t.platform;
      descriptors.push(descriptor);
      last = { bytes, descriptor };
      if (targets.length > 1) await dest.putManifest(descriptor.digest, bytes, MEDIA_TYPE_OCI_MANIFEST);
      const frames = built.blobs.reduce((n, b) => n + b.toc.frames.length, 0);
      platforms.push({
        ...(platformText ? { platform: platformText } : {}),
        manifestDigest: descriptor.digest,
        manifestSize: bytes.length,
        sourceManifest: t.fetched.digest,
        sourceLayers: converted.sourceLayers,
        blobs: built.blobs.map((b) => ({ digest: b.descriptor.digest, size: b.descriptor.size, uncompressedSize: b.descriptor.uncompressedSize, frames: b.toc.frames.length })),
        frames,
        bootstrap: { digest: boot.descriptor.digest, size: boot.descriptor.size, uncompressedSize: built.bootstrap.length },
        files: built.stats.files,
        fileBytes: built.stats.fileBytes,
        storedChunks: built.stats.storedChunks,
        dedupedChunks: built.stats.dedupedChunks,
        whiteouts: converted.merge.whiteouts + converted.merge.opaques,
        hardLinks: built.stats.hardLinks,
      });
      await rm(join(work, `image-${i}`), { recursive: true, force: true });
    }

    let topBytes: Buffer;
    let topDescriptor: OciDescriptor;
    if (targets.length === 1) {
      topBytes = last!.bytes;
      topDescriptor = { mediaType: MEDIA_TYPE_OCI_MANIFEST, digest: last!.descriptor.digest, size: last!.descriptor.size };
    } else {
      topBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: descriptors }));
      topDescriptor = { mediaType: MEDIA_TYPE_OCI_INDEX, digest: sha256(topBytes), size: topBytes.length };
    }
    await dest.tagTop(topDescriptor, topBytes);
    return {
      source: source.name,
      destination: dest.name,
      digest: topDescriptor.digest,
      mediaType: topDescriptor.mediaType,
      size: topDescriptor.size,
      platforms,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await source.close();
    await dest?.close();
    if (options.keepWork !== true) await rm(work, { recursive: true, force: true });
  }
}

/** Waits for every upload (none left running when one fails), then throws the first failure. */
async function settleAll(uploads: Iterable<Promise<void>>): Promise<void> {
  const results = await Promise.allSettled(uploads);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}
