/** `ondemand push oci:LAYOUT[:TAG] REF`: copy an image from an OCI layout to a registry, byte for byte. */
import { defineCommand, out, outJson } from '../command.js';
import { pushLayoutImage } from '../../copy/index.js';
import { UsageError } from '../../util/errors.js';
import { copyProgress } from './copy-progress.js';
import { registryAccess, registryOptions } from '../image-ref.js';

export const pushCommand = defineCommand({
  command: 'push <layout> <ref>',
  describe: 'Push an image from an OCI layout directory to a registry',
  builder: (y) =>
    registryOptions(y
      .positional('layout', { type: 'string', demandOption: true, describe: 'oci:PATH[:TAG]' })
      .positional('ref', { type: 'string', demandOption: true, describe: 'HOST[:PORT]/REPO[:TAG]' }), false)
      .option('mount-from', { type: 'string', array: true, describe: 'Repositories on the same registry to mount existing blobs from' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON' }),
  handler: async (argv) => {
    if (!argv.layout.startsWith('oci:')) throw new UsageError(`the source must be an OCI layout, oci:PATH[:TAG] (got "${argv.layout}")`);
    const progress = copyProgress('push');
    try {
      const result = await pushLayoutImage(argv.layout, argv.ref, {
        ...(await registryAccess(argv)),
        ...(argv.mountFrom !== undefined ? { mountFrom: argv.mountFrom.map(String) } : {}),
        onEvent: progress.onEvent,
      });
      progress.end();
      if (argv.json) outJson(result);
      else out(`pushed ${result.ref} ${result.digest} (${result.blobs} blobs, ${result.bytesMoved} bytes uploaded)`);
    } finally {
      progress.end();
    }
  },
});
