/** Typed errors across the control socket and the IPC channel: the CLI prints the daemon's error as if it were local. */
import {
  AuthError, CacheError, FetchError, FormatError, IntegrityError, MountError, NotFoundError, OndemandError,
  UnsupportedError, UsageError, errorText, systemCode, type ErrorContext,
} from '../util/errors.js';
import type { WireError } from './protocol.js';

export function toWire(err: unknown): WireError {
  if (err instanceof OndemandError) {
    const context: ErrorContext = {};
    for (const [k, v] of Object.entries(err.context)) if (v !== undefined) context[k] = v;
    return { code: err.code, message: err.message, context };
  }
  return { code: systemCode(err) ?? 'EINTERNAL', message: errorText(err) };
}

export function fromWire(w: WireError): OndemandError {
  const ctx: ErrorContext = w.context ?? {};
  switch (w.code) {
    case 'EUSAGE': return new UsageError(w.message, ctx);
    case 'EFORMAT': return new FormatError(w.message, ctx);
    case 'EINTEGRITY': return new IntegrityError(w.message, ctx);
    case 'EFETCH': return new FetchError(w.message, ctx);
    case 'ENOTFOUND': return new NotFoundError(w.message, ctx);
    case 'EAUTH': return new AuthError(w.message, ctx);
    case 'ECACHE': return new CacheError(w.message, ctx);
    case 'EMOUNT': return new MountError(w.message, ctx);
    case 'EUNSUPPORTED': return new UnsupportedError(w.message, ctx);
    default: return new OndemandError(w.code, w.message, ctx);
  }
}
