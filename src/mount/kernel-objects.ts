/**
 * Making and unmaking the kernel objects a mount consists of (loop devices, mounts, FUSE mounts,
 * directories). Used by the supervisor and, when the daemon is gone, by the CLI itself.
 */
import { execFile } from 'node:child_process';
import { rmdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { MNT_DETACH } from '../native/libc.js';
import { umountAsync } from '../native/mount-async.js';
import { MountError, systemCode } from '../util/errors.js';
import type { KernelObject } from '../daemon/protocol.js';

const run = promisify(execFile);

/** A read-only loop device over `file` (util-linux uses LOOP_CONFIGURE); returns /dev/loopN. */
export async function attachLoop(file: string): Promise<string> {
  try {
    const { stdout } = await run('losetup', ['--find', '--show', '--read-only', file]);
    return stdout.trim();
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new MountError(`cannot attach a loop device to ${file}: ${stderr ?? String(err)}`, { path: file }, { cause: err });
  }
}

async function detachLoop(device: string): Promise<void> {
  try {
    await run('losetup', ['--detach', device]);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    // Already gone (autoclear after the last user closed it) is fine.
    if (/No such device|No such device or address|not a block device|No such file/i.test(stderr)) return;
    throw new MountError(`cannot detach ${device}: ${stderr.trim()}`, { path: device }, { cause: err });
  }
}

async function lazyUmount(target: string): Promise<void> {
  try {
    await umountAsync(target, MNT_DETACH);
  } catch (err) {
    const code = systemCode(err);
    if (code === 'EINVAL' || code === 'ENOENT') return; // not (or no longer) a mount point
    throw err;
  }
}

/** Undoes one object. Mounts are detached lazily so a busy mount never blocks the cleanup. */
export async function unmakeObject(object: KernelObject): Promise<void> {
  switch (object.kind) {
    case 'mount':
      return lazyUmount(object.target);
    case 'fuse':
      return lazyUmount(object.path);
    case 'loop':
      return detachLoop(object.device);
    case 'dir':
      try {
        await rmdir(object.path);
      } catch (err) {
        if (systemCode(err) !== 'ENOENT') throw err;
      }
      return;
  }
}

export function describeObject(object: KernelObject): string {
  switch (object.kind) {
    case 'mount': return `${object.fstype} mount at ${object.target}`;
    case 'fuse': return `FUSE mount at ${object.path}`;
    case 'loop': return `loop device ${object.device}`;
    case 'dir': return `directory ${object.path}`;
  }
}
