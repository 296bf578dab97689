/**
 * The one logger. Goes to stderr so the CLI's stdout stays machine-readable, or to the file the
 * configuration names (log.file). Level: the configuration's log.level once applied (configureLog);
 * before that, and in tests and benchmarks that use the modules directly, $ONDEMAND_LOG_LEVEL, else 'warn'.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

const initialLevel = process.env.ONDEMAND_LOG_LEVEL ?? 'warn';

/** Where lines go now: the logger writes through `forward`, so configureLog can change it after loggers were made. */
let destination: DestinationStream = pino.destination({ fd: 2, sync: true });
const forward: DestinationStream = { write: (line: string) => destination.write(line) };

export const log: Logger = pino(
  {
    level: initialLevel,
    base: { pid: process.pid },
    redact: { paths: ['password', 'token', 'authorization', 'creds', 'credentials', '*.password', '*.token', '*.authorization', '*.credentials'], censor: '[secret]' },
  },
  forward,
);

/**
 * Applies the configuration's log settings to this process: the level, and a file to append to
 * instead of stderr (null: stderr). Throws the open error when the file cannot be opened.
 */
export function configureLog(options: { level: string; file: string | null }): void {
  log.level = options.level;
  if (options.file !== null) destination = pino.destination({ dest: options.file, sync: true, append: true, mkdir: true });
}

/** Reopens the log file (after logrotate moved it: SIGHUP); stderr needs nothing. */
export function reopenLog(): void {
  const d = destination as DestinationStream & { reopen?: () => void };
  d.reopen?.();
}

/** A logger carrying context (image, blob, mountpoint...) for every line it writes. */
export function logFor(context: Record<string, string | number | undefined>): Logger {
  return log.child(context);
}
