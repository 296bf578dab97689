import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { defineCommand, out } from '../command.js';
import { DaemonNotRunning, requestDaemon } from '../../daemon/client.js';
import { cleanupFromRecord } from '../../daemon/record-cleanup.js';
import { MountError, OndemandError, errorText } from '../../util/errors.js';

export const umountCommand = defineCommand({
  command: 'umount <mountpoint>',
  describe: 'Unmount an image and undo everything its mount made (works without a daemon too); refuses while processes use it',
  builder: (y) =>
    y
      .positional('mountpoint', { type: 'string', demandOption: true })
      .option('lazy', { type: 'boolean', default: false, describe: 'Detach it even while processes use it (their reads fail from then on)' }),
  handler: async (argv) => {
    let mountpoint = resolve(argv.mountpoint);
    try {
      mountpoint = realpathSync(mountpoint);
    } catch { /* a dead FUSE mount may not resolve: use the path as given */ }
    try {
      const r = await requestDaemon({ op: 'umount', mountpoint, lazy: argv.lazy });
      out(r.detachedFrom === undefined ? `unmounted ${r.mountpoint}` : `unmounted ${r.mountpoint} lazily, still ${r.detachedFrom}: their reads fail from now on`);
      return;
    } catch (err) {
      // The daemon is gone (killed, crashed): undo what its record file lists.
      if (!(err instanceof DaemonNotRunning)) throw err;
    }
    const { record, holder } = await cleanupFromRecord(mountpoint).catch((err: unknown) => {
      throw err instanceof OndemandError ? err : new MountError(errorText(err));
    });
    out(`unmounted ${record.mountpoint} (daemon not running: cleaned up from its record)`);
    if (holder?.kept) {
      out(`still in use, so detached: the fanotify group holder (pid ${holder.pid}) keeps its cache files marked; reading them fails (EIO) until a daemon runs again`);
    }
  },
});
