import { defineCommand } from '../command.js';
import { resolveCacheDir } from '../../cache/dir.js';
import { Supervisor } from '../../daemon/supervisor.js';
import { MountError } from '../../util/errors.js';
import { log } from '../../util/log.js';

export const daemonCommand = defineCommand({
  command: 'daemon',
  describe: 'Run the host\'s ondemand daemon (normally started by `mount`)',
  builder: (y) =>
    y
      .epilog(
        'Signals: SIGTERM or SIGINT to the daemon unmounts every image it serves, then it stops. A signal to its ' +
        'worker process (any, SIGTERM included) is a crash: the daemon starts a new worker, which serves the same ' +
        'mounts again; readers wait, they never see an error or zeros for it.',
      )
      .option('foreground', { type: 'boolean', default: true, describe: 'Stay attached (the daemon never forks itself; `mount` detaches it)' })
      .option('cache-dir', { type: 'string', describe: 'Cache directory (default $ONDEMAND_CACHE_DIR or /var/cache/ondemand)' }),
  handler: async (argv) => {
    if (process.env.ONDEMAND_LOG_LEVEL === undefined) {
      log.level = 'info';
      process.env.ONDEMAND_LOG_LEVEL = 'info'; // the worker inherits it
    }
    const supervisor = new Supervisor({ cacheDir: resolveCacheDir(argv.cacheDir) });
    await supervisor.run();
    if (supervisor.failure) throw new MountError(supervisor.failure);
  },
});
