/**
 * `ondemand trace ls` lists the start-up traces kept in the cache (one per image manifest);
 * `ondemand trace export DIGEST` prints one, for `mount --prefetch-trace FILE` on another host. Both
 * read the cache without its lock (they work while a daemon owns it).
 */
import { defineCommand, out, outJson } from '../command.js';
import { listMetadata, readTraceFile } from '../../cache/metadata-store.js';
import { cliConfig } from '../config.js';
import { setting } from '../../config/resolve.js';
import { parseTrace } from '../../format/image/trace.js';
import { NotFoundError, UsageError } from '../../util/errors.js';

export const traceCommand = defineCommand({
  command: 'trace <action> [digest]',
  describe: 'List (ls) or export the start-up traces kept in the cache (what cold mounts fetch first)',
  builder: (y) =>
    y
      .positional('action', { choices: ['ls', 'export'] as const, demandOption: true, describe: 'ls: list; export: print the trace of image manifest DIGEST' })
      .positional('digest', { type: 'string', describe: 'export: the image\'s manifest digest (sha256:..., see `trace ls` or `status --json`)' })
      .option('cache-dir', { type: 'string', describe: 'Cache directory (default cache.dir: $ONDEMAND_CACHE_DIR, the config file, /var/cache/ondemand)' })
      .option('json', { type: 'boolean', default: false, describe: 'ls: print JSON' }),
  handler: async (argv) => {
    const dir = setting(cliConfig({ 'cache.dir': { flag: '--cache-dir', value: argv.cacheDir } }), 'cache.dir');
    if (argv.action === 'ls') {
      const rows = listMetadata(dir).traces.map((digest) => {
        const t = parseTrace(readTraceFile(dir, digest)?.toString('utf8') ?? '', `trace of ${digest}`);
        return { manifestDigest: digest, recordedAt: t.recordedAt, ranges: t.ranges.length, bytes: t.ranges.reduce((n, r) => n + r.length, 0) };
      });
      if (argv.json) outJson(rows);
      else for (const r of rows) out(`${r.manifestDigest}  ${r.recordedAt}  ${r.ranges} ranges, ${r.bytes} bytes`);
      return;
    }
    if (argv.digest === undefined) throw new UsageError('trace export needs the image\'s manifest DIGEST');
    const digest = argv.digest.startsWith('sha256:') ? argv.digest : `sha256:${argv.digest}`;
    const bytes = readTraceFile(dir, digest);
    if (!bytes) throw new NotFoundError(`no start-up trace for ${digest} in ${dir}`);
    parseTrace(bytes.toString('utf8'), `trace of ${digest}`);
    process.stdout.write(bytes);
  },
});
