/**
 * Every CLI command, in the order `--help` lists them. Add one line per new command module.
 */
import type { CliCommand } from '../command.js';
import { versionCommand } from './version.js';
import { mountCommand } from './mount.js';
import { umountCommand } from './umount.js';
import { statusCommand } from './status.js';
import { detectCommand } from './detect.js';
import { daemonCommand } from './daemon.js';
import { cacheCommand } from './cache.js';
import { convertCommand } from './convert.js';
import { pushCommand } from './push.js';
import { pullCommand } from './pull.js';
import { buildCommand } from './build.js';
import { inspectCommand } from './inspect.js';
import { checkCommand } from './check.js';
import { exportCommand } from './export.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs erases the per-command argument types here
export const commands: CliCommand<any>[] = [
  versionCommand,
  buildCommand,
  inspectCommand,
  checkCommand,
  exportCommand,
  mountCommand,
  umountCommand,
  statusCommand,
  detectCommand,
  daemonCommand,
  cacheCommand,
  convertCommand,
  pushCommand,
  pullCommand,
];
