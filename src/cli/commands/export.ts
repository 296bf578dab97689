/** `ondemand export REF DIR`: writes the image's full tree with the user-space reader. */
import { defineCommand, out } from '../command.js';
import { formatSize } from '../../cache/size.js';
import { resolveImage } from '../../resolve/index.js';
import { openImage } from '../../format/image/image-reader.js';
import { exportTree } from '../../build/export.js';

export const exportCommand = defineCommand({
  command: 'export <ref> <dir>',
  describe: 'Write the full tree of an image to a directory (ownership, modes, xattrs, links, devices)',
  builder: (y) =>
    y
      .positional('ref', { type: 'string', demandOption: true, describe: 'oci:DIR[:TAG], a registry reference, or a bootstrap file' })
      .positional('dir', { type: 'string', demandOption: true, describe: 'Target directory (created; must be empty)' })
      .option('blob', { type: 'string', array: true, describe: 'Blob file of a plain bootstrap (repeat, device order)' }),
  handler: async (argv) => {
    const resolved = await resolveImage(argv.ref, { blobs: (argv.blob ?? []).map(String) });
    try {
      const opened = await openImage(resolved);
      const s = await exportTree(opened.reader, opened.devices, argv.dir);
      out(`exported ${s.entries} entries (${s.files} files, ${formatSize(s.bytes)} of data) to ${argv.dir}`);
    } finally {
      await resolved.fetcher.close();
    }
  },
});
