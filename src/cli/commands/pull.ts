/** `ondemand pull REF oci:LAYOUT[:TAG]`: copy an image from a registry into an OCI layout, byte for byte. */
import { defineCommand, out, outJson } from '../command.js';
import { pullToLayout } from '../../copy/index.js';
import { UsageError } from '../../util/errors.js';
import { copyProgress } from './copy-progress.js';
import { PLATFORM_DEFAULT_HOST, registryAccess, registryOptions } from '../image-ref.js';

export const pullCommand = defineCommand({
  command: 'pull <ref> <layout>',
  describe: 'Pull an image from a registry into an OCI layout directory',
  builder: (y) =>
    registryOptions(y
      .positional('ref', { type: 'string', demandOption: true, describe: 'HOST[:PORT]/REPO[:TAG][@DIGEST]' })
      .positional('layout', { type: 'string', demandOption: true, describe: 'oci:PATH[:TAG] (created if missing)' }), PLATFORM_DEFAULT_HOST)
      .option('all-platforms', { type: 'boolean', default: false, describe: 'Copy a multi-platform index with every platform' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON' }),
  handler: async (argv) => {
    if (!argv.layout.startsWith('oci:')) throw new UsageError(`the destination must be an OCI layout, oci:PATH[:TAG] (got "${argv.layout}")`);
    const progress = copyProgress('pull');
    try {
      const result = await pullToLayout(argv.ref, argv.layout, {
        ...(await registryAccess(argv)),
        allPlatforms: argv.allPlatforms,
        onEvent: progress.onEvent,
      });
      progress.end();
      if (argv.json) outJson(result);
      else out(`pulled ${result.ref} ${result.digest} into ${result.layout}:${result.tag} (${result.blobs} blobs, ${result.bytesMoved} bytes downloaded)`);
    } finally {
      progress.end();
    }
  },
});
