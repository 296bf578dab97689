/**
 * Mounting erofs in fscache mode. mount(2) blocks until the daemon has answered the bootstrap OPEN and
 * the superblock READ, so it runs on the libuv pool (koffi async), never on the thread serving
 * /dev/cachefiles. Mounts are serialized so they never occupy more than one pool thread (the READ path
 * needs the others for file I/O). umount(2) waits for the daemon to consume CLOSE: same treatment.
 */
import { MS_RDONLY } from '../../native/libc.js';
import { lastErrno, mountCall, umount2Call } from '../../native/cachefiles.js';
import { MountError } from '../../util/errors.js';

export interface FscacheMountOptions {
  mountpoint: string;
  fsid: string;
  /** Shared volume (6.1+): images in one domain share blob cookies and their cache files. */
  domainId?: string;
  /** One `device=` per device slot, in order (mkfs.erofs 1.5 `--blobdev` leaves slot tags empty). */
  devices?: string[];
}

/** The mount data string; keys must be printable ASCII without '/' or ','. */
export function fscacheMountData(opts: Omit<FscacheMountOptions, 'mountpoint'>): string {
  const keys = [opts.fsid, opts.domainId ?? '', ...(opts.devices ?? [])];
  for (const k of keys) {
    if (/[/,\s]/.test(k) || k.length > 200) throw new MountError(`invalid fscache key '${k}': no '/', ',', spaces; at most 200 characters`, { fsid: opts.fsid });
  }
  const parts = [`fsid=${opts.fsid}`];
  if (opts.domainId) parts.push(`domain_id=${opts.domainId}`);
  for (const d of opts.devices ?? []) parts.push(`device=${d}`);
  return parts.join(',');
}

let chain: Promise<unknown> = Promise.resolve();
function serialized<T>(fn: () => Promise<T>): Promise<T> {
  const next = chain.then(fn, fn);
  chain = next.catch(() => undefined);
  return next;
}

const ERRNO_HINT: Record<number, string> = {
  2: 'ENOENT: the kernel ignored fsid= (no CONFIG_EROFS_FS_ONDEMAND) or no daemon is bound',
  16: 'EBUSY: this fsid is already mounted without a domain',
  17: 'EEXIST: this fsid already exists in the domain',
  22: 'EINVAL: bad options (device= count must equal the image\'s extra devices; block size must be the page size)',
  5: 'EIO: the daemon failed the bootstrap OPEN or READ',
  105: 'ENOBUFS: no cache bound or the cache is dead',
};

export function mountErofsFscache(opts: FscacheMountOptions): Promise<void> {
  const data = fscacheMountData(opts);
  return serialized(
    () =>
      new Promise<void>((resolve, reject) => {
        // Source "none" must not name a file: on 6.12+ a regular-file source would mount file-backed.
        mountCall.async('none', opts.mountpoint, 'erofs', MS_RDONLY, data, (err, rc) => {
          if (err !== null && err !== undefined) return reject(new MountError(`mount erofs (fscache) failed: ${String(err)}`, { mountpoint: opts.mountpoint, fsid: opts.fsid }));
          if (rc === 0) return resolve();
          const e = lastErrno();
          reject(new MountError(`mount -t erofs -o ${data} failed: ${ERRNO_HINT[e] ?? `errno ${e}`}`, { mountpoint: opts.mountpoint }, { errno: e }));
        });
      }),
  );
}

export function umountErofs(mountpoint: string, flags = 0): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    umount2Call.async(mountpoint, flags, (err, rc) => {
      if (err !== null && err !== undefined) return reject(new MountError(`umount failed: ${String(err)}`, { mountpoint }));
      if (rc === 0) return resolve();
      const e = lastErrno();
      reject(new MountError(`umount failed: errno ${e}`, { mountpoint }, { errno: e }));
    });
  });
}
