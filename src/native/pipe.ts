/** Pipe sizes: what this process may make (F_SETPIPE_SZ) and what a pipe holds. */
import { readFileSync } from 'node:fs';
import { fcntlInt } from './libc.js';

const CAP_SYS_RESOURCE = 24;

/** The largest pipe this process may make (F_SETPIPE_SZ), in pages. */
export function pipePagesAllowed(): number {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    // CAP_SYS_RESOURCE lifts /proc/sys/fs/pipe-max-size.
    if (eff !== undefined && (BigInt(`0x${eff}`) >> BigInt(CAP_SYS_RESOURCE)) & 1n) return Number.MAX_SAFE_INTEGER;
    return Math.floor(Number(readFileSync('/proc/sys/fs/pipe-max-size', 'utf8')) / 4096);
  } catch {
    return 16; // the default pipe
  }
}

const F_GETPIPE_SZ = 1032;

/** Bytes a pipe fd may hold (F_GETPIPE_SZ), or -1 when fd is not a pipe. */
export function pipeCapacity(fd: number): number {
  return fcntlInt(fd, F_GETPIPE_SZ, 0);
}
