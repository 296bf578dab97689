/** `ondemand inspect REF`: manifest, blobs, frames, and what the tree holds. */
import { defineCommand, out, outJson } from '../command.js';
import { formatSize } from '../../cache/size.js';
import { imageRefOptions, withImageFromArgv } from '../image-ref.js';
import { countTree, openImage } from '../../reader/open-image.js';

export const inspectCommand = defineCommand({
  command: 'inspect <ref>',
  describe: 'Show an image: manifest, bootstrap, blobs and frames, file and directory counts',
  builder: (y) => imageRefOptions(y).option('json', { type: 'boolean', default: false, describe: 'Print JSON' }),
  handler: async (argv) => {
    await withImageFromArgv(argv, async (resolved) => {
      const opened = await openImage(resolved);
      const { image } = resolved;
      const tree = countTree(opened.reader);
      const sb = opened.reader.superblock;
      const blobs = image.blobs.map((b, i) => ({ ...b, frames: opened.tocs[i]!.frames.length }));
      if (argv.json) {
        outJson({ ref: image.ref, manifestDigest: image.manifestDigest, chunkSize: image.chunkSize, config: image.config, bootstrap: image.bootstrap, blobs, tree, buildTime: String(sb.buildTime) });
        return;
      }
      out(`image ${image.ref}`);
      out(`manifest ${image.manifestDigest}, chunk size ${image.chunkSize === 0 ? 'unknown' : formatSize(image.chunkSize)}`);
      out(`config ${image.config.digest} (${image.config.mediaType})`);
      out(`bootstrap ${image.bootstrap.digest}: ${formatSize(image.bootstrap.size)} stored, ${formatSize(image.bootstrap.uncompressedSize)} uncompressed`);
      for (const [i, b] of blobs.entries()) {
        out(`blob ${i + 1} ${b.digest}: ${formatSize(b.size)} stored, ${formatSize(b.uncompressedSize)} uncompressed, ${b.frames} frames of ${formatSize(b.frameSize)} (${b.compression}), id ${b.blobId}`);
      }
      out(`tree: ${tree.files} files (${formatSize(tree.fileBytes)}), ${tree.dirs} dirs, ${tree.symlinks} symlinks, ${tree.others} other, ${tree.hardLinks} extra hard links`);
    });
  },
});
