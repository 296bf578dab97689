/** `ondemand export REF DIR`: writes the image's full tree with the user-space reader. */
import { defineCommand, out } from '../command.js';
import { formatSize } from '../../cache/size.js';
import { imageRefOptions, withImageFromArgv } from '../image-ref.js';
import { openImage } from '../../reader/open-image.js';
import { exportTree } from '../../build/export.js';

export const exportCommand = defineCommand({
  command: 'export <ref> <dir>',
  describe: 'Write the full tree of an image to a directory (ownership, modes, xattrs, links, devices)',
  builder: (y) => imageRefOptions(y).positional('dir', { type: 'string', demandOption: true, describe: 'Target directory (created; must be empty)' }),
  handler: async (argv) => {
    await withImageFromArgv(argv, async (resolved) => {
      const opened = await openImage(resolved);
      const s = await exportTree(opened.reader, opened.devices, argv.dir);
      out(`exported ${s.entries} entries (${s.files} files, ${formatSize(s.bytes)} of data) to ${argv.dir}`);
    });
  },
});
