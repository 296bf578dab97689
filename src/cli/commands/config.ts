/**
 * `ondemand config show [--json]`: every effective configuration value and where it came from
 * (default, file PATH, env NAME, flag --x). Takes the flags other commands take that set keys, so
 * `config show --cache-dir X` shows what `mount --cache-dir X` would use.
 */
import { defineCommand, out, outJson } from '../command.js';
import { cliConfig } from '../config.js';
import { DEFAULT_CONFIG_PATH, KEYS, KEY_NAMES, type KeySpec } from '../../config/keys.js';
import { describeSource, type FlagValues } from '../../config/resolve.js';

export const configCommand = defineCommand({
  command: 'config <action>',
  describe: 'Show the effective configuration and where each value came from',
  builder: (y) =>
    y
      .positional('action', { choices: ['show'] as const, demandOption: true, describe: 'show: print every key, its value and its source' })
      .option('json', { type: 'boolean', default: false, describe: 'Print JSON' })
      .option('cache-dir', { type: 'string', describe: 'As `mount --cache-dir` (cache.dir)' })
      .option('max-size', { type: 'string', describe: 'As `cache gc --max-size` (cache.max_size)' })
      .option('prefetch', { type: 'boolean', describe: 'As `mount --prefetch` / `--no-prefetch` (prefetch.enabled)' })
      .option('prefetch-rate', { type: 'string', describe: 'As `mount --prefetch-rate` (prefetch.rate)' }),
  handler: async (argv) => {
    const flags: FlagValues = {
      'cache.dir': { flag: '--cache-dir', value: argv.cacheDir },
      'cache.max_size': { flag: '--max-size', value: argv.maxSize },
      'prefetch.enabled': { flag: argv.prefetch === false ? '--no-prefetch' : '--prefetch', value: argv.prefetch },
      'prefetch.rate': { flag: '--prefetch-rate', value: argv.prefetchRate },
    };
    const config = cliConfig(flags);
    const fileLine = config.file === null ? null : { path: config.file.path, from: describeSource(config.file.from) };
    if (argv.json) {
      const settings: Record<string, { value: unknown; source: string }> = {};
      for (const key of KEY_NAMES) settings[key] = { value: config.settings[key].value, source: describeSource(config.settings[key].source) };
      outJson({ file: fileLine, settings });
      return;
    }
    out(config.file === null ? `config file: none (${DEFAULT_CONFIG_PATH} does not exist)` : `config file: ${config.file.path} (${describeSource(config.file.from)})`);
    const rows = KEY_NAMES.map((key) => {
      const spec = KEYS[key] as KeySpec<unknown>;
      return [key, spec.kind.show(config.settings[key].value), describeSource(config.settings[key].source)] as const;
    });
    const keyWidth = Math.max(...rows.map((r) => r[0].length));
    const valueWidth = Math.max(...rows.map((r) => r[1].length));
    for (const [key, value, source] of rows) out(`${key.padEnd(keyWidth)}  ${value.padEnd(valueWidth)}  ${source}`);
  },
});
