/** Waiting for a promise at most so long. */
import { MountError } from './errors.js';

/** `p`, or a rejection with `error()` (default: a MountError saying `what`) after `ms`. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string, error: () => Error = () => new MountError(what)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(error()), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

/** True when `p` settled within `ms` (its rejection counts as settled), false when time ran out first. */
export function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return withTimeout(p.then(() => true, () => true), ms, 'timed out').catch(() => false);
}
