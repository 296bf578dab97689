/**
 * The one logger. Goes to stderr so the CLI's stdout stays machine-readable.
 * Level: $ONDEMAND_LOG_LEVEL, else 'warn' (the CLI) — the daemon raises it to 'info'.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

const level = process.env.ONDEMAND_LOG_LEVEL ?? 'warn';

export const log: Logger = pino(
  {
    level,
    base: { pid: process.pid },
    redact: { paths: ['password', 'token', 'authorization', 'creds', 'credentials', '*.password', '*.token', '*.authorization', '*.credentials'], censor: '[secret]' },
  },
  pino.destination({ fd: 2, sync: true }),
);

/** A logger carrying context (image, blob, mountpoint...) for every line it writes. */
export function logFor(context: Record<string, string | number | undefined>): Logger {
  return log.child(context);
}
