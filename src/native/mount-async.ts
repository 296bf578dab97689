/**
 * mount(2)/umount2(2) run on the libuv threadpool: mounting erofs over our own FUSE files makes the
 * kernel read through FUSE during the call, so the calling thread must not be one that serves FUSE
 * or the daemon's IPC (a synchronous call there would deadlock or stall worker restarts).
 */
import { koffi } from './libc.js';
import { sysError } from './xattr.js';

const libc = koffi.load('libc.so.6');
type Callback = (err: unknown, res: number) => void;
interface AsyncFn<A extends unknown[]> { async: (...args: [...A, Callback]) => void }

const mountFn = libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)') as unknown as
  AsyncFn<[string | null, string, string | null, number, string | null]>;
const umountFn = libc.func('int umount2(const char *target, int flags)') as unknown as AsyncFn<[string, number]>;

function call<A extends unknown[]>(fn: AsyncFn<A>, what: string, path: string, args: A): Promise<void> {
  return new Promise((resolve, reject) => {
    fn.async(...args, (err: unknown, res: number) => {
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else if (res !== 0) reject(sysError(what, path, koffi.errno()));
      else resolve();
    });
  });
}

export function mountAsync(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): Promise<void> {
  return call(mountFn, 'mount', target, [source, target, fstype, flags, data]);
}

export function umountAsync(target: string, flags: number): Promise<void> {
  return call(umountFn, 'umount2', target, [target, flags]);
}
