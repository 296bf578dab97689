/** `ondemand convert SRC DST`: an ordinary OCI/Docker image → an ondemand image. */
import { defineCommand, out, outJson } from '../command.js';
import { convertImage, type ProgressEvent } from '../../convert/index.js';
import { readTraceFile, TRACE_OPTION_HELP } from '../trace-file.js';
import { UsageError } from '../../util/errors.js';
import { COMPRESSIONS, type Compression } from '../../format/image/types.js';
import { registryAccess, registryOptions } from '../image-ref.js';
import { createProgress, mib } from '../progress.js';

/**
 * Convert's phases through the shared progress renderer (stderr): layer bars, a line per phase; with
 * --json, JSON lines on stderr so stdout stays the one result document.
 */
function progressPrinter(json: boolean): { onEvent: (e: ProgressEvent & { platform?: string }) => void; end: () => void } {
  const progress = createProgress({ json });
  return {
    onEvent: (e) => {
      const p = e.platform ? `[${e.platform}] ` : '';
      const platform = e.platform ? { platform: e.platform } : {};
      switch (e.kind) {
        case 'layer-start':
          progress.note(`${p}layer ${e.layer + 1}/${e.layers} ${e.digest.slice(0, 19)} (${mib(e.size)})`,
            { event: 'layer-start', ...platform, layer: e.layer + 1, layers: e.layers, digest: e.digest, size: e.size });
          break;
        case 'layer-bytes':
          progress.bytes(e.compressedBytes, e.size, `${p}layer ${e.layer + 1}`);
          break;
        case 'layer-done':
          progress.note(`${p}layer ${e.layer + 1}/${e.layers} applied: ${e.entries} entries, ${mib(e.uncompressedBytes)} of ${e.codec === 'none' ? 'tar' : `${e.codec} tar`}`,
            { event: 'layer-done', ...platform, layer: e.layer + 1, layers: e.layers, entries: e.entries, uncompressedBytes: e.uncompressedBytes });
          break;
        case 'build-start':
          progress.note(`${p}building: ${e.files} files`, { event: 'build-start', ...platform, files: e.files });
          break;
        case 'build-done':
          progress.note(`${p}built ${e.blobs} blob(s), ${e.frames} frames, ${mib(e.storedBytes)} stored`,
            { event: 'build-done', ...platform, blobs: e.blobs, frames: e.frames, storedBytes: e.storedBytes });
          break;
      }
    },
    end: () => progress.end(),
  };
}

function sizeOption(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  const m = /^([0-9]+)([KMGT]?)i?B?$/i.exec(text.trim());
  if (m === null) throw new UsageError(`${what} "${text}" is not a size (e.g. 1048576, 1M, 64G)`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return Number(m[1]) * mult;
}

export const convertCommand = defineCommand({
  command: 'convert <src> <dst>',
  describe: 'Convert an ordinary OCI/Docker image (tar, gzip or zstd layers) into an ondemand image',
  builder: (y) =>
    registryOptions(y
      .positional('src', { type: 'string', demandOption: true, describe: 'Source image: HOST[:PORT]/REPO[:TAG][@DIGEST] or oci:PATH[:TAG]' })
      .positional('dst', { type: 'string', demandOption: true, describe: 'Destination: HOST[:PORT]/REPO[:TAG] or oci:PATH[:TAG]' }),
    'Convert only this platform (os/arch[/variant], or "host") of a multi-platform source; default: all, as an index')
      .option('chunk-size', { type: 'string', describe: 'erofs chunk size (power of two, default 1M)' })
      .option('frame-size', { type: 'string', describe: 'Uncompressed bytes per frame (default 1M)' })
      .option('compression', { choices: COMPRESSIONS, describe: 'Frame codec (default gzip)' })
      .option('work-dir', { type: 'string', describe: "Where lower layers' contents are spooled and blobs are built (default $TMPDIR or /var/tmp)" })
      .option('max-layer-size', { type: 'string', describe: 'Most bytes one layer may decompress to (default 64G)' })
      .option('max-ratio', { type: 'number', describe: 'Most decompressed bytes per compressed byte (default 400)' })
      .option('prefetch-trace', { type: 'string', describe: `${TRACE_OPTION_HELP} the image carries: cold mounts anywhere fetch its frames first` })
      .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON (progress: JSON lines on stderr)' }),
  handler: async (argv) => {
    const printer = progressPrinter(argv.json);
    const maxLayerBytes = sizeOption(argv.maxLayerSize, '--max-layer-size');
    const chunkSize = sizeOption(argv.chunkSize, '--chunk-size');
    const frameSize = sizeOption(argv.frameSize, '--frame-size');
    if (argv.maxRatio !== undefined && !(argv.maxRatio > 0)) throw new UsageError('--max-ratio must be positive');
    const prefetchTrace = argv.prefetchTrace === undefined ? undefined : readTraceFile(argv.prefetchTrace);
    const access = await registryAccess(argv);
    let result;
    try {
      result = await convertImage(argv.src, argv.dst, {
        ...access,
        ...(chunkSize !== undefined ? { chunkSize } : {}),
        ...(frameSize !== undefined ? { frameSize } : {}),
        ...(argv.compression !== undefined ? { compression: argv.compression as Compression } : {}),
        ...(argv.workDir !== undefined ? { workDir: argv.workDir } : {}),
        ...(prefetchTrace ? { prefetchTrace } : {}),
        limits: {
          bomb: { ...(maxLayerBytes !== undefined ? { maxLayerBytes } : {}), ...(argv.maxRatio !== undefined ? { maxRatio: argv.maxRatio } : {}) },
        },
        progress: printer.onEvent,
      });
    } finally {
      printer.end();
    }
    if (argv.json) {
      outJson(result);
      return;
    }
    const blobs = result.platforms.reduce((n, p) => n + p.blobs.length, 0);
    const frames = result.platforms.reduce((n, p) => n + p.frames, 0);
    out(`converted ${result.source} → ${result.destination}: ${result.digest} (${result.platforms.length} platform(s), ${blobs} blob(s), ${frames} frames, ${result.seconds.toFixed(1)} s)`);
  },
});
