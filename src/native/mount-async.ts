/**
 * mount(2)/umount2(2) run on the libuv threadpool: mounting erofs over our own FUSE files makes the
 * kernel read through FUSE during the call, so the calling thread must not be one that serves FUSE
 * or the daemon's IPC (a synchronous call there would deadlock or stall worker restarts).
 */
import { koffi, mount, sysError, umount2, type WithAsync } from './libc.js';

function call<A extends unknown[]>(fn: WithAsync<A, number>, what: string, path: string, args: A): Promise<void> {
  return new Promise((resolve, reject) => {
    fn.async(...args, (err: unknown, res: number) => {
      if (err) reject(err instanceof Error ? err : new Error(`${what} ${path}: ${JSON.stringify(err)}`));
      else if (res !== 0) reject(sysError(what, path, koffi.errno()));
      else resolve();
    });
  });
}

export function mountAsync(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): Promise<void> {
  return call(mount, 'mount', target, [source, target, fstype, flags, data]);
}

export function umountAsync(target: string, flags: number): Promise<void> {
  return call(umount2, 'umount2', target, [target, flags]);
}
