import { readFileSync, statSync } from 'node:fs';
import { defineCommand, out } from '../command.js';
import { PLATFORM_DEFAULT_HOST, blobOption, callerCredentials, registryAccess, registryOptions } from '../image-ref.js';
import { cliConfig } from '../config.js';
import { setting } from '../../config/resolve.js';
import { ensureDaemon, requestDaemon } from '../../daemon/client.js';
import { runDir } from '../../daemon/paths.js';
import { MOUNT_MODE_REQUESTS } from '../../mount/types.js';
import { checkMountpoint, daemonDirs } from '../../mount/mountpoint.js';
import { parsePathList } from '../../mount/prefetch-paths.js';
import { readTraceFile, TRACE_OPTION_HELP } from '../trace-file.js';
import { MountError, NotFoundError, UsageError, errorText } from '../../util/errors.js';
import { createProgress } from '../progress.js';

export const mountCommand = defineCommand({
  command: 'mount <mountpoint>',
  describe: 'Mount an image lazily (read-only, nosuid, nodev unless --allow-devices); returns once the mount is usable',
  builder: (y) =>
    registryOptions(blobOption(y
      .positional('mountpoint', { type: 'string', demandOption: true, describe: 'An existing, empty directory' })
      .option('image', { type: 'string', demandOption: true, describe: 'oci:PATH[:TAG], HOST[:PORT]/REPO[:TAG][@DIGEST], or a bootstrap file' })
      .option('mode', { choices: MOUNT_MODE_REQUESTS, default: 'auto' as const, describe: 'How the kernel gets the data (see `ondemand detect`)' })
      .option('prefetch', { type: 'boolean', describe: 'Fetch every blob in the background after mounting (default prefetch.enabled, false)' })
      .option('prefetch-paths', { type: 'string', describe: 'FILE of paths or globs inside the image (one a line, # comments) whose data is fetched first, in order' })
      .option('prefetch-trace', { type: 'string', describe: `${TRACE_OPTION_HELP} whose frames are fetched first, in order (default: the one this cache kept, else the image's)` })
      .option('prefetch-rate', { type: 'string', describe: 'Prefetch bandwidth cap of this mount, bytes/s, e.g. 50M (default prefetch.rate)' })
      .option('wait', { type: 'boolean', default: false, describe: 'After mounting, show the prefetch\'s progress until it is done (exit 1 if it fails)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print JSON lines (mounted, progress, done/failed events)' })
      .option('cache-dir', { type: 'string', describe: 'Cache directory (default cache.dir: $ONDEMAND_CACHE_DIR, the config file, /var/cache/ondemand)' })
      .option('allow-devices', { type: 'boolean', default: false, describe: 'Let device nodes in the image work (mounts are nodev by default)' })), PLATFORM_DEFAULT_HOST)
      .option('foreground', { type: 'boolean', default: false, describe: 'Start the daemon attached to this terminal and wait for it' }),
  handler: async (argv) => {
    const config = cliConfig({
      'cache.dir': { flag: '--cache-dir', value: argv.cacheDir },
      'prefetch.enabled': { flag: argv.prefetch === false ? '--no-prefetch' : '--prefetch', value: argv.prefetch },
      'prefetch.rate': { flag: '--prefetch-rate', value: argv.prefetchRate },
    });
    const cacheDir = setting(config, 'cache.dir');
    const prefetch = setting(config, 'prefetch.enabled');
    const prefetchRate = setting(config, 'prefetch.rate');
    const prefetchPaths = argv.prefetchPaths === undefined ? undefined : readPathList(argv.prefetchPaths);
    const prefetchTrace = argv.prefetchTrace === undefined ? undefined : readTraceFile(argv.prefetchTrace);
    if (argv.wait && !prefetch && !prefetchPaths?.length) throw new UsageError('--wait needs --prefetch or --prefetch-paths (there is nothing to wait for)');
    if (argv.wait && argv.foreground) throw new UsageError('--wait and --foreground do not go together');
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
        op: 'mount', image: argv.image, mountpoint, mode: argv.mode, prefetch, insecure: access.insecure,
        ...(prefetchPaths?.length ? { prefetchPaths } : {}),
        ...(prefetchTrace ? { prefetchTrace } : {}),
        ...(prefetchRate > 0 ? { prefetchRate } : {}),
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
    if (argv.json) {
      out(JSON.stringify({ event: 'mounted', mountpoint: result.mountpoint, image: result.image, mode: result.mode, warnings: result.warnings ?? [] }));
    } else {
      for (const w of result.warnings ?? []) process.stderr.write(`ondemand: warning: ${w}\n`);
      out(`mounted ${result.image} at ${result.mountpoint} (mode ${result.mode}: ${result.reason.split('; passed over')[0]})`);
    }
    if (argv.wait && !(await waitForPrefetch(result.mountpoint, argv.json))) process.exitCode = 1;
    if (daemon.child) {
      out(`daemon running in the foreground (pid ${daemon.child.pid}); Ctrl-C stops it and unmounts`);
      const child = daemon.child;
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill('SIGTERM'));
      await new Promise<void>((r) => child.once('exit', () => r()));
    }
  },
});

/** The --prefetch-paths list, read before anything is mounted: a file that cannot be read is a one-line error. */
function readPathList(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new NotFoundError(`--prefetch-paths ${file}: cannot read it: ${errorText(err)}`, {}, { cause: err });
  }
  return parsePathList(text);
}

const POLL_MS = 500;

/**
 * Polls the daemon's status until the mount's prefetch ends, rendering bytes present of its blobs.
 * Text on stderr (stdout keeps the command's result lines); JSON lines on stdout with --json.
 */
async function waitForPrefetch(mountpoint: string, json: boolean): Promise<boolean> {
  const progress = createProgress(json ? { json, stream: process.stdout } : {});
  for (;;) {
    const s = await requestDaemon({ op: 'status' }, 5_000);
    const m = s.mounts.find((x) => x.mountpoint === mountpoint);
    if (!m) {
      progress.failed(`${mountpoint} is no longer mounted`);
      if (!json) process.stderr.write(`ondemand: prefetch of ${mountpoint} did not finish: it is no longer mounted\n`);
      return false;
    }
    progress.bytes(m.bytesPresent, m.bytesTotal, 'prefetch');
    if (m.prefetch === 'failed') {
      const error = m.prefetchError ?? 'prefetch failed';
      progress.failed(error);
      if (!json) process.stderr.write(`ondemand: prefetch of ${mountpoint} failed: ${error}\n`);
      return false;
    }
    if (m.prefetch !== 'running') {
      progress.done({ bytes: m.bytesPresent, total: m.bytesTotal });
      if (!json) out(`prefetch done: ${(m.bytesPresent / (1 << 20)).toFixed(1)} of ${(m.bytesTotal / (1 << 20)).toFixed(1)} MiB present`);
      return true;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
