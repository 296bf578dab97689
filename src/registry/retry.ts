/**
 * When and how long to wait before trying a registry request again: exponential back-off with full
 * jitter, Retry-After honoured, one budget of attempts and one deadline shared by every step of an
 * operation (including resumed body reads).
 */
import { FetchError, type ErrorContext } from '../util/errors.js';

export interface RetryPolicy {
  /** Tries per operation, the first included (default 6). */
  attempts: number;
  /** First back-off step in ms (default 200). */
  baseDelayMs: number;
  /** Longest single wait in ms (default 10 s); Retry-After is capped at 4x this. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 200, maxDelayMs: 10_000 };

/** Statuses worth another try: throttling, timeouts and server-side failures. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

/** `Retry-After` as milliseconds from now: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^[0-9]+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** Full-jitter exponential back-off for failure number `failure` (1-based). */
export function backoffDelay(failure: number, policy: RetryPolicy, random = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, failure - 1));
  return Math.floor(ceiling / 2 + (random() * ceiling) / 2);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const reason = (): Error => (signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal?.aborted) {
      reject(reason());
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(reason());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The retry state of one operation. `signal` fires at the caller's abort or at the deadline;
 * `failed()` waits the back-off (or throws once attempts or time are used up).
 */
export class RetryBudget {
  readonly signal: AbortSignal;
  readonly deadlineAt: number;
  private failures = 0;
  private lastError = '';
  private readonly deadlineSignal: AbortSignal;

  constructor(
    private readonly policy: RetryPolicy,
    private readonly deadlineMs: number,
    private readonly what: string,
    private readonly context: ErrorContext,
    callerSignal?: AbortSignal,
  ) {
    this.deadlineAt = Date.now() + deadlineMs;
    this.deadlineSignal = AbortSignal.timeout(deadlineMs);
    this.signal = callerSignal ? AbortSignal.any([callerSignal, this.deadlineSignal]) : this.deadlineSignal;
  }

  get failureCount(): number {
    return this.failures;
  }

  /** True when the deadline (not the caller) ended the operation. */
  get timedOut(): boolean {
    return this.deadlineSignal.aborted;
  }

  /** The error to throw when the deadline or the caller's abort stopped us. */
  abortError(): Error {
    if (this.timedOut) {
      return new FetchError(`${this.what} timed out after ${this.deadlineMs / 1000} s${this.lastError ? ` (last error: ${this.lastError})` : ''}`, this.context);
    }
    const reason: unknown = this.signal.reason;
    return reason instanceof Error ? reason : new Error('aborted');
  }

  /** Records a failure; waits before the next try or throws a FetchError when none is left. */
  async failed(reason: string, retryAfterMs?: number): Promise<void> {
    this.failures++;
    this.lastError = reason;
    if (this.signal.aborted) throw this.abortError();
    if (this.failures >= this.policy.attempts) {
      throw new FetchError(`${this.what} failed after ${this.failures} attempts: ${reason}`, this.context);
    }
    let delay = backoffDelay(this.failures, this.policy);
    if (retryAfterMs !== undefined) delay = Math.max(delay, Math.min(retryAfterMs, this.policy.maxDelayMs * 4));
    if (Date.now() + delay >= this.deadlineAt) {
      throw new FetchError(`${this.what} gave up: the deadline falls before the next try (last error: ${reason})`, this.context);
    }
    try {
      await sleep(delay, this.signal);
    } catch {
      throw this.abortError();
    }
  }
}
