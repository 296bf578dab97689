/**
 * Converts one ordinary image manifest: stream every layer through the tar reader into the merged
 * tree, then build one bootstrap and one blob per source layer (a layer's blob holds the chunks of
 * the files whose final version it supplied). Lower layers' file bodies are spooled to the work
 * directory (a layer above may still delete or replace them) and hashed chunk by chunk on the way;
 * the top layer's files are final, so they are laid out into its blob as they stream in (and
 * uploaded meanwhile, to a registry destination): one pass, no work copy.
 */
import { join } from 'node:path';
import { FormatError, IntegrityError } from '../util/errors.js';
import { ImageBuilder, type BuildResult, type BuildStats } from '../build/builder.js';
import { ChunkDigests } from '../build/chunk-digests.js';
import type { GrowingBlob } from '../build/growing-blob.js';
import type { FileContent } from '../build/source.js';
import type { Compression } from '../format/image/types.js';
import type { Descriptor, ImageManifest } from '../registry/manifest.js';
import type { ImageSource } from './image-source.js';
import { openLayerStream, type BombLimits } from './layer-stream.js';
import { LayerApplier, commonMtime, emptyRoot, emptyStats, toSourceTree, type MergeStats } from './merge.js';
import { LayerSpool } from './spool.js';
import { readTar, type TarLimits, type TarSummary } from './tar.js';
import { makeDirs } from '../util/make-dirs.js';

export const LAYER_MEDIA_TYPES = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.diff.tar',
]);

export interface ConvertLimits {
  bomb: Partial<BombLimits>;
  tar: Partial<TarLimits>;
}

export interface BuildSettings {
  chunkSize?: number;
  frameSize?: number;
  compression?: Compression;
}

/** Progress events, for the CLI's lines or bar. */
export type ProgressEvent =
  | { kind: 'layer-start'; layer: number; layers: number; digest: string; size: number }
  | { kind: 'layer-bytes'; layer: number; compressedBytes: number; size: number }
  | { kind: 'layer-done'; layer: number; layers: number; entries: number; uncompressedBytes: number; codec: string }
  | { kind: 'build-start'; files: number }
  | { kind: 'build-done'; blobs: number; frames: number; storedBytes: number };

export interface ConvertedImage {
  config: Descriptor;
  configBytes: Buffer;
  built: BuildResult;
  merge: MergeStats;
  sourceLayers: number;
}

export async function convertManifest(
  source: ImageSource,
  manifest: ImageManifest,
  workDir: string,
  settings: BuildSettings,
  limits: ConvertLimits,
  progress: (e: ProgressEvent) => void,
  onBlob?: (blob: GrowingBlob) => void,
): Promise<ConvertedImage> {
  const name = source.name;
  if (manifest.layers.some((l) => l.mediaType.startsWith('application/vnd.ondemand.'))) {
    throw new FormatError(`${name} is already an ondemand image`, { image: name });
  }
  for (const [i, l] of manifest.layers.entries()) {
    if (!LAYER_MEDIA_TYPES.has(l.mediaType)) {
      throw new FormatError(`${name}: layer ${i} (${l.digest}) has media type "${l.mediaType}", not a tar layer`, { image: name, blob: l.digest });
    }
  }
  const configBytes = await source.blob(manifest.config.digest, 8 * 1024 * 1024);
  makeDirs(workDir);

  const root = emptyRoot();
  const stats = emptyStats();
  const spools: LayerSpool[] = [];
  const top = manifest.layers.length - 1;
  const builder = new ImageBuilder({
    workDir,
    blobCount: Math.max(1, manifest.layers.length),
    ...(settings.chunkSize !== undefined ? { chunkSize: settings.chunkSize } : {}),
    ...(settings.frameSize !== undefined ? { frameSize: settings.frameSize } : {}),
    ...(settings.compression !== undefined ? { compression: settings.compression } : {}),
    ...(onBlob !== undefined ? { onBlob } : {}),
  });
  try {
    for (const [k, layer] of manifest.layers.entries()) {
      const what = `${name}: layer ${k} (${layer.digest.slice(0, 19)})`;
      progress({ kind: 'layer-start', layer: k, layers: manifest.layers.length, digest: layer.digest, size: layer.size });
      let store: (body: AsyncIterable<Buffer>, size: number) => Promise<FileContent>;
      let spool: LayerSpool | undefined;
      if (k === top) {
        store = (body, size) => builder.layOutStream(body, size, k);
      } else {
        const s = await LayerSpool.create(join(workDir, `layer-${k}.spool`));
        spools.push(s);
        spool = s;
        store = async (body) => {
          const digests = new ChunkDigests(builder.chunkSize);
          const at = await s.append(body, (piece) => digests.update(piece));
          const content = s.content(at.offset, at.size);
          builder.noteLowerChunks(content, digests.finish());
          return content;
        };
      }
      const raw = source.openBlob(layer.digest);
      const algorithm = layer.digest.startsWith('sha512:') ? 'sha512' : 'sha256';
      const stream = openLayerStream(raw, what, limits.bomb, algorithm);
      const applier = new LayerApplier(root, k, what, store, stats);
      let lastReport = 0;
      const tarInput = (async function* () {
        for await (const chunk of stream.tar) {
          yield chunk;
          const now = Date.now();
          if (now - lastReport > 500) {
            lastReport = now;
            progress({ kind: 'layer-bytes', layer: k, compressedBytes: stream.progress().compressedBytes, size: layer.size });
          }
        }
      })();
      let summary: TarSummary;
      try {
        summary = await readTar(tarInput, (entry, body) => applier.apply(entry, body), { what, limits: limits.tar });
      } finally {
        raw.destroy();
      }
      const got = stream.result();
      if (got.compressedBytes !== layer.size) {
        throw new IntegrityError(`${what}: ${got.compressedBytes} bytes, the manifest says ${layer.size}`, { image: name, blob: layer.digest });
      }
      if (got.digest !== layer.digest) {
        throw new IntegrityError(`${what}: content has digest ${got.digest}, the manifest says ${layer.digest}`, { image: name, blob: layer.digest });
      }
      await spool?.finish();
      progress({ kind: 'layer-done', layer: k, layers: manifest.layers.length, entries: summary.entries, uncompressedBytes: got.uncompressedBytes, codec: got.codec });
    }

    progress({ kind: 'build-start', files: stats.files });
    const built = await builder.build(toSourceTree(root), commonMtime(root));
    progress({
      kind: 'build-done',
      blobs: built.blobs.length,
      frames: built.blobs.reduce((n, b) => n + b.toc.frames.length, 0),
      storedBytes: built.blobs.reduce((n, b) => n + b.descriptor.size, 0),
    });
    return { config: manifest.config, configBytes, built, merge: stats, sourceLayers: manifest.layers.length };
  } catch (err) {
    // The top layer's blob was being written (and uploaded) while it streamed: end both.
    await builder.abort(err);
    throw err;
  } finally {
    for (const s of spools) await s.close();
  }
}

export type { BuildStats };
