/** The errnos the FUSE code answers with or expects, and the one a thrown value stands for. */
import { OndemandError } from '../util/errors.js';

export const ENOENT = 2;
export const EINTR = 4;
export const EIO = 5;
export const EAGAIN = 11;
export const ENODEV = 19;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const EROFS = 30;
export const ERANGE = 34;
export const ENOSYS = 38;
export const ENODATA = 61;
export const EPROTO = 71;

/** The errno to send the kernel for a thrown value. */
export function errnoOf(err: unknown): number {
  if (err instanceof OndemandError) return err.errno;
  if (typeof err === 'object' && err !== null && 'errno' in err) {
    const n = (err as { errno: unknown }).errno;
    if (typeof n === 'number' && n !== 0) return Math.abs(n);
  }
  return EIO;
}
