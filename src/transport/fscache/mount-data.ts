/**
 * The mount(2) data string of erofs over fscache (`fsid=`, `domain_id=`, `device=`), and what the
 * kernel's errors for it mean.
 */
import { MountError } from '../../util/errors.js';

export interface FscacheMountKeys {
  fsid: string;
  /** Shared volume (6.1+): images in one domain share blob cookies and their cache files. */
  domainId?: string;
  /** One `device=` per device slot, in order (mkfs.erofs 1.5 `--blobdev` leaves slot tags empty). */
  devices?: string[];
}

/** Keys must be printable ASCII without '/' or ',' (they name cachefiles' directories and files). */
export function fscacheMountData(keys: FscacheMountKeys): string {
  for (const k of [keys.fsid, keys.domainId ?? '', ...(keys.devices ?? [])]) {
    if (/[/,\s]/.test(k) || k.length > 200) throw new MountError(`invalid fscache key '${k}': no '/', ',', spaces; at most 200 characters`, { fsid: keys.fsid });
  }
  const parts = [`fsid=${keys.fsid}`];
  if (keys.domainId) parts.push(`domain_id=${keys.domainId}`);
  for (const d of keys.devices ?? []) parts.push(`device=${d}`);
  return parts.join(',');
}

const HINTS: Record<string, string> = {
  ENOENT: 'the kernel ignored fsid= (no CONFIG_EROFS_FS_ONDEMAND) or no daemon is bound',
  EBUSY: 'this fsid is already mounted without a domain',
  EEXIST: 'this fsid already exists in the domain',
  EINVAL: "bad options (device= count must equal the image's extra devices; block size must be the page size)",
  EIO: 'the daemon failed the bootstrap OPEN or READ',
  ENOBUFS: 'no cache bound or the cache is dead',
};

/** What a failed erofs-over-fscache mount(2) most likely means, from its error code. */
export function fscacheMountHint(code: string | undefined): string | undefined {
  return code === undefined ? undefined : HINTS[code];
}
