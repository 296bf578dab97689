/**
 * Every CLI command, in the order `--help` lists them, loaded lazily: a run loads only the module of the
 * command it names (start-up time matters: `ondemand build` should not load the registry or the daemon).
 * Add one entry per new command module; `name` is the first word of its `command` string.
 */
import type { CliCommand } from '../command.js';

export interface LazyCommand {
  name: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs erases the per-command argument types here
  load: () => Promise<CliCommand<any>>;
}

export const commands: LazyCommand[] = [
  { name: 'version', load: async () => (await import('./version.js')).versionCommand },
  { name: 'build', load: async () => (await import('./build.js')).buildCommand },
  { name: 'inspect', load: async () => (await import('./inspect.js')).inspectCommand },
  { name: 'check', load: async () => (await import('./check.js')).checkCommand },
  { name: 'export', load: async () => (await import('./export.js')).exportCommand },
  { name: 'mount', load: async () => (await import('./mount.js')).mountCommand },
  { name: 'umount', load: async () => (await import('./umount.js')).umountCommand },
  { name: 'status', load: async () => (await import('./status.js')).statusCommand },
  { name: 'detect', load: async () => (await import('./detect.js')).detectCommand },
  { name: 'daemon', load: async () => (await import('./daemon.js')).daemonCommand },
  { name: 'config', load: async () => (await import('./config.js')).configCommand },
  { name: 'cache', load: async () => (await import('./cache.js')).cacheCommand },
  { name: 'trace', load: async () => (await import('./trace.js')).traceCommand },
  { name: 'convert', load: async () => (await import('./convert.js')).convertCommand },
  { name: 'push', load: async () => (await import('./push.js')).pushCommand },
  { name: 'pull', load: async () => (await import('./pull.js')).pullCommand },
  { name: 'bench', load: async () => (await import('./bench.js')).benchCommand },
];

/** The modules to load for these arguments: the named command's alone, or all (help, unknown names). */
export async function loadCommandsFor(args: string[]): Promise<CliCommand<any>[]> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const first = args.find((a) => !a.startsWith('-'));
  const named = commands.find((c) => c.name === first);
  const chosen = named ? [named] : commands;
  return Promise.all(chosen.map((c) => c.load()));
}
