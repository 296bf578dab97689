/**
 * Typed errors across the control socket and the IPC channel: the CLI prints the daemon's error as if it
 * were local. Type, code, errno, context and the chain of causes travel (a cause that is a system error
 * comes back as an OndemandError with its code, e.g. EBUSY).
 */
import {
  AuthError, CacheError, ConfigError, FetchError, FormatError, IntegrityError, MountError, NotFoundError, OndemandError,
  UnsupportedError, UsageError, errorText, systemCode, systemErrno, type ErrorContext,
} from '../util/errors.js';
import type { WireError } from './protocol.js';

/** Causes sent at most: enough to say why, bounded against a cyclic or runaway chain. */
const MAX_CAUSES = 4;

export function toWire(err: unknown, depth = 0): WireError {
  const inner = err instanceof Error && err.cause !== undefined && depth < MAX_CAUSES ? { cause: toWire(err.cause, depth + 1) } : {};
  if (err instanceof OndemandError) {
    const context: ErrorContext = {};
    for (const [k, v] of Object.entries(err.context)) if (v !== undefined) context[k] = v;
    return { code: err.code, message: err.message, context, errno: err.errno, ...inner };
  }
  const errno = systemErrno(err);
  return { code: systemCode(err) ?? 'EINTERNAL', message: errorText(err), ...(errno !== undefined ? { errno } : {}), ...inner };
}

export function fromWire(w: WireError): OndemandError {
  const ctx: ErrorContext = w.context ?? {};
  const options = w.cause !== undefined ? { cause: fromWire(w.cause) } : {};
  // Only these classes take an errno; the others have one fixed errno each.
  const withErrno = { ...options, ...(w.errno !== undefined ? { errno: w.errno } : {}) };
  switch (w.code) {
    case 'EUSAGE': return new UsageError(w.message, ctx, options);
    case 'ECONFIG': return new ConfigError(w.message, ctx, options);
    case 'EFORMAT': return new FormatError(w.message, ctx, options);
    case 'EINTEGRITY': return new IntegrityError(w.message, ctx, options);
    case 'EFETCH': return new FetchError(w.message, ctx, options);
    case 'ENOTFOUND': return new NotFoundError(w.message, ctx, options);
    case 'EAUTH': return new AuthError(w.message, ctx, options);
    case 'ECACHE': return new CacheError(w.message, ctx, withErrno);
    case 'EMOUNT': return new MountError(w.message, ctx, withErrno);
    case 'EUNSUPPORTED': return new UnsupportedError(w.message, ctx, options);
    default: return new OndemandError(w.code, w.message, ctx, withErrno);
  }
}
