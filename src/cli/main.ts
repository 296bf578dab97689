/**
 * The `ondemand` CLI. Exit codes: 0 success, 1 failure, 2 bad usage.
 * Failures print one line `ondemand: <what went wrong>` on stderr.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { endQuietlyOnClosedStdout } from './command.js';
import { applyLogConfig, cliConfig, useConfigFlag } from './config.js';
import { loadCommandsFor } from './commands/index.js';
import { OndemandError, UsageError, errorText } from '../util/errors.js';
import { log } from '../util/log.js';

export async function runCli(args: string[]): Promise<number> {
  endQuietlyOnClosedStdout();
  let exitCode = 0;
  const parser = yargs(args)
    .scriptName('ondemand')
    .strict()
    .demandCommand(1, 'name a command (see --help)')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version(false)
    .option('config', { type: 'string', global: true, nargs: 1, describe: 'Configuration file (default $ONDEMAND_CONFIG, else /etc/ondemand/config.toml; see docs/config.md)' })
    // Every command reads the configuration first: a bad file fails it in one line, and logging follows it.
    .middleware((argv) => {
      useConfigFlag(typeof argv.config === 'string' ? argv.config : undefined);
      applyLogConfig(cliConfig());
    })
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      // yargs reports its own parse errors (e.g. an option missing its value) as a YError: bad usage too.
      if (err && err.name !== 'YError') throw err;
      // Some of yargs' messages span lines (a value outside an option's choices): one line, as every error.
      throw new UsageError((msg ?? err?.message ?? 'bad usage').replace(/\s*\n\s*/g, ' '));
    });
  for (const cmd of await loadCommandsFor(args)) {
    parser.command(cmd.command, cmd.describe, cmd.builder, async (argv) => {
      await cmd.handler(argv);
    });
  }
  try {
    await parser.parseAsync();
  } catch (err) {
    exitCode = reportFailure(err);
  }
  // A command may end with a status of its own (`daemon status`: 3 when none runs).
  return exitCode !== 0 ? exitCode : Number(process.exitCode ?? 0);
}

function reportFailure(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`ondemand: ${err.describe()}\n(see ondemand --help)\n`);
    return 2;
  }
  if (err instanceof OndemandError) {
    log.debug({ err, context: err.context }, 'command failed');
    process.stderr.write(`ondemand: ${err.describe()}\n`);
    return 1;
  }
  log.debug({ err }, 'command failed');
  process.stderr.write(`ondemand: ${errorText(err)}\n`);
  return 1;
}

const code = await runCli(hideBin(process.argv));
process.exitCode = code;
