import { defineCommand, out } from '../command.js';
import { DaemonNotRunning, requestDaemon } from '../../daemon/client.js';
import { cleanupFromRecord } from '../../mount/cleanup.js';
import { MountError } from '../../util/errors.js';

export const umountCommand = defineCommand({
  command: 'umount <mountpoint>',
  describe: 'Unmount an image and undo everything its mount made (works without a daemon too)',
  builder: (y) => y.positional('mountpoint', { type: 'string', demandOption: true }),
  handler: async (argv) => {
    try {
      const r = await requestDaemon({ op: 'umount', mountpoint: argv.mountpoint });
      out(`unmounted ${r.mountpoint}`);
      return;
    } catch (err) {
      // The daemon is gone (killed, crashed): undo what its record file lists.
      if (!(err instanceof DaemonNotRunning)) throw err;
    }
    const record = await cleanupFromRecord(argv.mountpoint).catch((err: unknown) => {
      throw err instanceof MountError ? err : new MountError(String(err));
    });
    out(`unmounted ${record.mountpoint} (daemon not running: cleaned up from its record)`);
  },
});
