/** Checks on the user's mountpoint, before anything is made, and the "is it usable yet" wait after. */
import { realpathSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { MountError, systemCode } from '../util/errors.js';
import { isMountPoint } from './mountinfo.js';

/** The canonical absolute path of an existing, non-busy directory; one clear error otherwise. */
export function checkMountpoint(path: string): string {
  const abs = resolve(path);
  let real: string;
  try {
    real = realpathSync(abs);
    if (!statSync(real).isDirectory()) throw new MountError(`mountpoint ${abs} is not a directory`, { mountpoint: abs });
  } catch (err) {
    if (err instanceof MountError) throw err;
    if (systemCode(err) === 'ENOENT') throw new MountError(`mountpoint ${abs} does not exist`, { mountpoint: abs });
    if (systemCode(err) === 'ENOTDIR') throw new MountError(`mountpoint ${abs} is not a directory`, { mountpoint: abs });
    throw new MountError(`mountpoint ${abs} cannot be used: ${String(systemCode(err) ?? err)}`, { mountpoint: abs }, { cause: err });
  }
  if (isMountPoint(real)) throw new MountError(`mountpoint ${real} is busy: something is already mounted there`, { mountpoint: real });
  return real;
}

/** Waits until the mount's root can be listed (the kernel has read the erofs root through the transport). */
export async function waitUsable(mountpoint: string, timeoutMs = 30_000): Promise<void> {
  const { readdir } = await import('node:fs/promises');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (isMountPoint(mountpoint)) {
        await readdir(mountpoint);
        return;
      }
    } catch (err) {
      if (Date.now() > deadline) throw new MountError(`mount at ${mountpoint} is not usable: ${String(systemCode(err) ?? err)}`, { mountpoint });
    }
    if (Date.now() > deadline) throw new MountError(`mount at ${mountpoint} did not appear`, { mountpoint });
    await new Promise((r) => setTimeout(r, 50));
  }
}
