/** `ondemand build SRC_DIR oci:LAYOUT[:TAG]`: the ondemand image of a directory, into an OCI layout. */
import { defineCommand, out, outJson } from '../command.js';
import { formatSize, parseSize } from '../../cache/size.js';
import { UsageError } from '../../util/errors.js';
import { buildDirectoryToLayout } from '../../build/to-layout.js';
import { checkChunkSize, checkFrameSize, DEFAULT_CHUNK_SIZE, DEFAULT_FRAME_SIZE } from '../../build/builder.js';
import { parseOciRef } from '../../format/image/oci-layout.js';
import { COMPRESSIONS, type Compression } from '../../format/image/types.js';
import { readTraceFile, TRACE_OPTION_HELP } from '../trace-file.js';

export const buildCommand = defineCommand({
  command: 'build <src> <dest>',
  describe: 'Build the ondemand image of a directory into an OCI image layout (dest: oci:DIR[:TAG])',
  builder: (y) =>
    y
      .positional('src', { type: 'string', demandOption: true, describe: 'Source directory' })
      .positional('dest', { type: 'string', demandOption: true, describe: 'oci:LAYOUT_DIR[:TAG] (tag default: latest)' })
      .option('chunk-size', { type: 'string', default: String(DEFAULT_CHUNK_SIZE), describe: 'erofs chunk size (power of two, >= 4096; e.g. 1M)' })
      .option('frame-size', { type: 'string', default: String(DEFAULT_FRAME_SIZE), describe: 'Uncompressed bytes per frame (multiple of 4096)' })
      .option('compression', { choices: COMPRESSIONS, default: 'gzip' as Compression, describe: 'Frame compression' })
      .option('prefetch-trace', { type: 'string', describe: `${TRACE_OPTION_HELP} the image carries: cold mounts anywhere fetch its frames first` })
      .option('json', { type: 'boolean', default: false, describe: 'Print the manifest digest and sizes as JSON' }),
  handler: async (argv) => {
    if (!argv.dest.startsWith('oci:')) throw new UsageError(`destination ${argv.dest} must be oci:LAYOUT_DIR[:TAG]`);
    const { path, tag } = parseOciRef(argv.dest);
    if (path === '') throw new UsageError('destination has an empty layout path');
    const chunkSize = checkChunkSize(parseSize(argv.chunkSize));
    const frameSize = checkFrameSize(parseSize(argv.frameSize));
    const prefetchTrace = argv.prefetchTrace === undefined ? undefined : readTraceFile(argv.prefetchTrace);
    const started = Date.now();
    const s = await buildDirectoryToLayout(argv.src, path, tag ?? 'latest', { chunkSize, frameSize, compression: argv.compression as Compression, ...(prefetchTrace ? { prefetchTrace } : {}) });
    if (argv.json) {
      outJson({ ...s, seconds: (Date.now() - started) / 1000 });
      return;
    }
    out(`built ${argv.src} into oci:${s.layout}:${s.tag}`);
    out(`manifest ${s.manifestDigest} (${s.manifestSize} bytes)`);
    out(`bootstrap ${s.bootstrap.digest}: ${formatSize(s.bootstrap.size)} stored, ${formatSize(s.bootstrap.uncompressedSize)} uncompressed`);
    for (const b of s.blobs) out(`blob ${b.digest}: ${formatSize(b.size)} stored, ${formatSize(b.uncompressedSize)} uncompressed, ${b.frames} frames (${b.compression})`);
    const st = s.stats;
    out(`${st.files} files (${st.inlineFiles} inline), ${st.dirs} dirs, ${st.symlinks} symlinks, ${st.others} other, ${st.hardLinks} extra hard links; ` +
      `${st.chunks} chunks: ${st.storedChunks} stored, ${st.dedupedChunks} deduplicated, ${st.holeChunks} holes; ${((Date.now() - started) / 1000).toFixed(1)} s`);
  },
});
