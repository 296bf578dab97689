import { statSync } from 'node:fs';
import { defineCommand, out } from '../command.js';
import { PLATFORM_DEFAULT_HOST, blobOption, callerCredentials, registryAccess, registryOptions } from '../image-ref.js';
import { cliConfig } from '../config.js';
import { setting } from '../../config/resolve.js';
import { ensureDaemon, requestDaemon } from '../../daemon/client.js';
import { runDir } from '../../daemon/paths.js';
import { MOUNT_MODE_REQUESTS } from '../../mount/types.js';
import { checkMountpoint, daemonDirs } from '../../mount/mountpoint.js';
import { MountError } from '../../util/errors.js';

export const mountCommand = defineCommand({
  command: 'mount <mountpoint>',
  describe: 'Mount an image lazily (read-only, nosuid, nodev unless --allow-devices); returns once the mount is usable',
  builder: (y) =>
    registryOptions(blobOption(y
      .positional('mountpoint', { type: 'string', demandOption: true, describe: 'An existing, empty directory' })
      .option('image', { type: 'string', demandOption: true, describe: 'oci:PATH[:TAG], HOST[:PORT]/REPO[:TAG][@DIGEST], or a bootstrap file' })
      .option('mode', { choices: MOUNT_MODE_REQUESTS, default: 'auto' as const, describe: 'How the kernel gets the data (see `ondemand detect`)' })
      .option('prefetch', { type: 'boolean', describe: 'Fetch every blob in the background after mounting (default prefetch.enabled, false)' })
      .option('cache-dir', { type: 'string', describe: 'Cache directory (default cache.dir: $ONDEMAND_CACHE_DIR, the config file, /var/cache/ondemand)' })
      .option('allow-devices', { type: 'boolean', default: false, describe: 'Let device nodes in the image work (mounts are nodev by default)' })), PLATFORM_DEFAULT_HOST)
      .option('foreground', { type: 'boolean', default: false, describe: 'Start the daemon attached to this terminal and wait for it' }),
  handler: async (argv) => {
    const config = cliConfig({
      'cache.dir': { flag: '--cache-dir', value: argv.cacheDir },
      'prefetch.enabled': { flag: argv.prefetch === false ? '--no-prefetch' : '--prefetch', value: argv.prefetch },
    });
    const cacheDir = setting(config, 'cache.dir');
    // Bad mountpoints and options fail here, before any daemon is started.
    const mountpoint = checkMountpoint(argv.mountpoint, daemonDirs(runDir(), cacheDir));
    const access = await registryAccess(argv, config);
    const blobs = (argv.blob ?? []).map(String);
    // Resolved here, as the caller: the daemon uses exactly these (null: none), never its own.
    const credentials = await callerCredentials(argv.image, access, blobs);
    // A daemon this starts runs with this configuration (one already running keeps its own).
    const daemon = await ensureDaemon({ config, foreground: argv.foreground });
    let result;
    try {
      result = await requestDaemon({
        op: 'mount', image: argv.image, mountpoint, mode: argv.mode, prefetch: setting(config, 'prefetch.enabled'), insecure: access.insecure,
        ...(access.platform !== undefined ? { platform: access.platform } : {}),
        ...(credentials !== undefined ? { credentials } : {}),
        ...(blobs.length ? { blobs } : {}),
        ...(argv.allowDevices ? { allowDevices: true } : {}),
      });
    } catch (err) {
      if (daemon.child) daemon.child.kill('SIGTERM');
      throw err;
    }
    try {
      statSync(mountpoint);
    } catch (err) {
      throw new MountError(`mounted, but ${mountpoint} cannot be used: ${String(err)}`, { mountpoint });
    }
    for (const w of result.warnings ?? []) process.stderr.write(`ondemand: warning: ${w}\n`);
    out(`mounted ${result.image} at ${result.mountpoint} (mode ${result.mode}: ${result.reason.split('; passed over')[0]})`);
    if (daemon.child) {
      out(`daemon running in the foreground (pid ${daemon.child.pid}); Ctrl-C stops it and unmounts`);
      const child = daemon.child;
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill('SIGTERM'));
      await new Promise<void>((r) => child.once('exit', () => r()));
    }
  },
});
