import { defineCommand } from '../command.js';
import { applyLogConfig, cliConfig } from '../config.js';
import { setting } from '../../config/resolve.js';
import { Supervisor } from '../../daemon/supervisor.js';
import { MountError } from '../../util/errors.js';

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
      .option('cache-dir', { type: 'string', describe: 'Cache directory (default cache.dir: $ONDEMAND_CACHE_DIR, the config file, /var/cache/ondemand)' }),
  handler: async (argv) => {
    // Started by `mount`: the configuration that CLI resolved (its flags included); else this command's own.
    const config = cliConfig({ 'cache.dir': { flag: '--cache-dir', value: argv.cacheDir } });
    // The daemon's default level is info (a CLI's is warn): set here so its worker gets it too.
    if (config.settings['log.level'].source.kind === 'default') config.settings['log.level'] = { value: 'info', source: { kind: 'default' } };
    applyLogConfig(config);
    const supervisor = new Supervisor({ cacheDir: setting(config, 'cache.dir'), config });
    await supervisor.run();
    if (supervisor.failure) throw new MountError(supervisor.failure);
  },
});
