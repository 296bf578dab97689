/** Where the host's daemon keeps its socket, records and logs. `$ONDEMAND_RUN_DIR` isolates test daemons. */
import { join } from 'node:path';
import { defaultRunDir } from '../util/user-dirs.js';

/** $ONDEMAND_RUN_DIR, else /run/ondemand (root) or $XDG_RUNTIME_DIR/ondemand (an unprivileged user's own daemon). */
export function runDir(): string {
  return process.env.ONDEMAND_RUN_DIR ?? defaultRunDir();
}

export const controlSocketPath = (dir = runDir()): string => join(dir, 'control.sock');
/** The supervisor's record of every mount and the kernel objects it made (see protocol.ts RecordFile). */
export const recordFilePath = (dir = runDir()): string => join(dir, 'mounts.json');
/** Held (flock) by the one daemon that owns the run dir, for as long as it runs. */
export const daemonLockPath = (dir = runDir()): string => join(dir, 'daemon.lock');
export const pidFilePath = (dir = runDir()): string => join(dir, 'daemon.pid');
export const daemonLogPath = (dir = runDir()): string => join(dir, 'daemon.log');
/** Private FUSE mounts that expose each image's bootstrap and blobs. */
export const fuseMountsDir = (dir = runDir()): string => join(dir, 'fuse');
