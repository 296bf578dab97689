/**
 * Typed errors with context. Every failure the CLI reports is one of these, printed as one line.
 * Context names what failed (image, blob, offset...) so logs and messages can say where.
 */
export interface ErrorContext {
  image?: string;
  blob?: string;
  offset?: number;
  length?: number;
  path?: string;
  mountpoint?: string;
  [key: string]: string | number | boolean | undefined;
}

export class OndemandError extends Error {
  /** Stable machine-readable code, e.g. 'EFORMAT', 'EFETCH'. */
  readonly code: string;
  readonly context: ErrorContext;
  /** errno to report to the kernel (FUSE, cachefiles) when this error ends a read. */
  readonly errno: number;

  constructor(code: string, message: string, context: ErrorContext = {}, options: { cause?: unknown; errno?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = context;
    this.errno = options.errno ?? 5; // EIO
  }

  /** One line for the user: the message plus the context that is not already in it. */
  describe(): string {
    const extra = Object.entries(this.context)
      .filter(([, v]) => v !== undefined && !this.message.includes(String(v)))
      .map(([k, v]) => `${k}=${String(v)}`);
    return extra.length > 0 ? `${this.message} (${extra.join(', ')})` : this.message;
  }
}

/** Bad command-line usage: exit code 2. */
export class UsageError extends OndemandError {
  constructor(message: string, context: ErrorContext = {}, options: { cause?: unknown } = {}) {
    super('EUSAGE', message, context, { ...options, errno: 22 });
  }
}

/**
 * A configuration that cannot be used: the file (syntax, unknown key, wrong value) or an environment
 * variable. Exit code 1, one line naming the file or variable, the key and the problem.
 */
export class ConfigError extends OndemandError {
  constructor(message: string, context: ErrorContext = {}, options: { cause?: unknown } = {}) {
    super('ECONFIG', message, context, { ...options, errno: 22 });
  }
}

/** A malformed image: erofs, TOC, manifest, layer tar. */
export class FormatError extends OndemandError {
  constructor(message: string, context: ErrorContext = {}, options: { cause?: unknown } = {}) {
    super('EFORMAT', message, context, { ...options, errno: 117 /* EUCLEAN, the kernel's EFSCORRUPTED */ });
  }
}

/** Bytes whose digest does not match what the image promises. Never cached, never served. */
export class IntegrityError extends OndemandError {
  constructor(message: string, context: ErrorContext = {}, options: { cause?: unknown } = {}) {
    super('EINTEGRITY', message, context, { ...options, errno: 5 });
  }
}

/** A fetch from a registry or a local source failed (after retries). */
export class FetchError extends OndemandError {
  constructor(message: string, context: ErrorContext = {}, options: { cause?: unknown } = {}) {
    super('EFETCH', message, context, { ...options, errno: 5 });
  }
}

/** Something asked for does not exist: image, tag, blob, path. */
export class NotFoundError extends OndemandError {
  constructor(message: string, context: ErrorContext = {}, options: { cause?: unknown } = {}) {
    super('ENOTFOUND', message, context, { ...options, errno: 2 });
  }
}

/** Registry authentication or authorisation failed. Messages never carry secrets. */
export class AuthError extends OndemandError {
  constructor(message: string, context: ErrorContext = {}, options: { cause?: unknown } = {}) {
    super('EAUTH', message, context, { ...options, errno: 13 });
  }
}

/** The local cache could not store or load data (full disk, wrong filesystem, corrupt map). */
export class CacheError extends OndemandError {
  constructor(message: string, context: ErrorContext = {}, options: { cause?: unknown; errno?: number } = {}) {
    super('ECACHE', message, context, options);
  }
}

/** Mounting or unmounting failed. */
export class MountError extends OndemandError {
  constructor(message: string, context: ErrorContext = {}, options: { cause?: unknown; errno?: number } = {}) {
    super('EMOUNT', message, context, options);
  }
}

/** The operation needs a kernel feature or a tool that is not there. */
export class UnsupportedError extends OndemandError {
  constructor(message: string, context: ErrorContext = {}, options: { cause?: unknown } = {}) {
    super('EUNSUPPORTED', message, context, { ...options, errno: 95 });
  }
}

/** Text of any thrown value, for wrapping foreign errors. */
export function errorText(err: unknown): string {
  if (err instanceof OndemandError) return err.describe();
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The positive errno number of a system error (Node's are negative, ours from sysError positive), if any. */
export function systemErrno(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'errno' in err) {
    const n = (err as { errno: unknown }).errno;
    return typeof n === 'number' && n !== 0 ? Math.abs(n) : undefined;
  }
  return undefined;
}

/** The errno of a Node system error (`ENOENT` → code string), if any. */
export function systemCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** A failed write of a file a command makes (`what`: e.g. "the image blob"), naming a full disk plainly. */
export function fileWriteError(err: unknown, what: string, path: string, offset: number): OndemandError {
  const why = systemCode(err) === 'ENOSPC' ? 'disk full (ENOSPC)' : errorText(err);
  return new OndemandError('EWRITE', `cannot write ${what} ${path}: ${why}`, { path, offset }, { cause: err });
}

/** A benchmark step failed (`ondemand bench`): a workload's processes, a start-up command, a full pull. */
export class BenchError extends OndemandError {
  constructor(message: string, context: ErrorContext = {}, options: { cause?: unknown } = {}) {
    super('EBENCH', message, context, options);
  }
}
