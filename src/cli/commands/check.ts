/** `ondemand check REF`: verifies every digest (manifest → TOC → frames) and reads the whole tree. */
import { defineCommand, out, outJson } from '../command.js';
import { formatSize } from '../../cache/size.js';
import { imageRefOptions, withImageFromArgv } from '../image-ref.js';
import { checkImage } from '../../reader/check.js';

export const checkCommand = defineCommand({
  command: 'check <ref>',
  describe: 'Verify every digest of an image (manifest, bootstrap, TOCs, frames) and read every file',
  builder: (y) => imageRefOptions(y).option('json', { type: 'boolean', default: false, describe: 'Print JSON' }),
  handler: async (argv) => {
    await withImageFromArgv(argv, async (resolved) => {
      const r = await checkImage(resolved);
      if (argv.json) {
        outJson({ ok: true, ...r });
        return;
      }
      out(`ok: ${resolved.image.blobs.length} blobs, ${r.frames} frames (${formatSize(r.uncompressedBytes)}) verified; ` +
        `${r.tree.files} files, ${r.tree.dirs} dirs read (${formatSize(r.bytesRead)})`);
    });
  },
});
