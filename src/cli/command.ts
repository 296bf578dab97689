/** What every CLI command module exports: a yargs command with a typed handler. */
import type { Argv, ArgumentsCamelCase } from 'yargs';
import { systemCode } from '../util/errors.js';

export interface CliCommand<A extends object = object> {
  command: string;
  describe: string;
  builder: (yargs: Argv) => Argv<A>;
  handler: (argv: ArgumentsCamelCase<A>) => Promise<void>;
}

/** Makes a command with its argument type inferred from the builder. */
export function defineCommand<A extends object>(cmd: CliCommand<A>): CliCommand<A> {
  return cmd;
}

/**
 * A reader that went away (`ondemand status | head -1`) is no failure: end quietly with exit 0 at the
 * first write that finds the pipe closed, instead of an unhandled 'error' event and its stack trace.
 */
export function endQuietlyOnClosedStdout(): void {
  process.stdout.on('error', (err) => {
    if (systemCode(err) !== 'EPIPE') throw err;
    process.exit(0);
  });
}

/** Prints one line of the command's own output (the only place console output is allowed). */
export function out(line: string): void {
  process.stdout.write(line + '\n');
}

/** Prints a value as pretty JSON on stdout. */
export function outJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
