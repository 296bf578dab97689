/**
 * The CLI's configuration: the file (`--config FILE`, a global option, else $ONDEMAND_CONFIG, else
 * /etc/ondemand/config.toml), the environment, and the flags of the command that runs. Every command
 * reads it once before it runs (main.ts), which also applies its log settings; commands with flags
 * that set keys resolve it again with those (cliConfig(flags)).
 */
import { DAEMON_CONFIG_ENV, configFromJson, resolveConfig, setting, type FlagValues, type ResolvedConfig } from '../config/resolve.js';
import { ConfigError, errorText } from '../util/errors.js';
import { configureLog } from '../util/log.js';

let configFlag: string | undefined;
/** The configuration a starting CLI handed to this process (the daemon), read once. */
let handed: ResolvedConfig | undefined;

/** Records the global `--config FILE`. */
export function useConfigFlag(file: string | undefined): void {
  configFlag = file;
}

/** The effective configuration with these flags of the running command. */
export function cliConfig(flags: FlagValues = {}): ResolvedConfig {
  const text = process.env[DAEMON_CONFIG_ENV];
  if (text !== undefined) {
    // Taken out of the environment: the daemon's workers and helpers get the configuration explicitly.
    delete process.env[DAEMON_CONFIG_ENV];
    handed = configFromJson(text, `$${DAEMON_CONFIG_ENV}`);
  }
  if (handed !== undefined) return handed;
  return resolveConfig({ configFlag, flags });
}

/** Applies log.level and log.file to this process. */
export function applyLogConfig(config: ResolvedConfig): void {
  const file = setting(config, 'log.file');
  try {
    configureLog({ level: setting(config, 'log.level'), file });
  } catch (err) {
    throw new ConfigError(`log.file ${file ?? ''}: cannot open it: ${errorText(err)}`, {}, { cause: err });
  }
}
