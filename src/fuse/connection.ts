/**
 * A mounted FUSE connection seen from outside the session: its bdi (read-ahead) and, as a last
 * resort, aborting it through fusectl. Making and unmaking the mount is kernel-objects.ts's job.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mount } from '../native/libc.js';
import { MountError } from '../util/errors.js';
import { log } from '../util/log.js';
import { deviceMountedAt } from '../util/mountinfo.js';

/** `major:minor` of the filesystem mounted at `mountpoint`, from mountinfo (no stat: it would wait for INIT). */
export function mountDevice(mountpoint: string): string {
  const device = deviceMountedAt(mountpoint);
  if (device === undefined) throw new MountError(`${mountpoint} is not in /proc/self/mountinfo`, { mountpoint });
  return device;
}

/** Sets /sys/class/bdi/<maj:min>/read_ahead_kb; best effort (logged). */
export function setReadAhead(device: string, kb: number): void {
  try {
    writeFileSync(`/sys/class/bdi/${device}/read_ahead_kb`, String(kb));
  } catch (err) {
    log.warn({ device, err: String(err) }, 'cannot set FUSE read_ahead_kb');
  }
}

const FUSECTL = '/sys/fs/fuse/connections';

function fusectlMounted(): boolean {
  return readFileSync('/proc/self/mounts', 'utf8').includes(` ${FUSECTL} fusectl `);
}

/** fusectl's directory of the connection behind `device` (`major:minor`; the entry is named by the minor). */
function connectionDir(device: string): string {
  return `${FUSECTL}/${device.split(':')[1]}`;
}

/** connectionDir, mounting fusectl if needed. */
function fusectlDir(device: string): string {
  if (!fusectlMounted()) mount('fusectl', FUSECTL, 'fusectl', 0, null);
  return connectionDir(device);
}

/** Requests of the connection not yet finished (queued, or read and not answered); undefined when unknown. */
export function connectionWaiting(device: string): number | undefined {
  try {
    const n = Number(readFileSync(`${fusectlDir(device)}/waiting`, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the kernel has dropped the connection behind `device`: its fusectl entry goes when the
 * FUSE superblock does. Undefined when fusectl is not mounted (this does not mount it).
 */
export function connectionGone(device: string): boolean | undefined {
  return fusectlMounted() ? !existsSync(connectionDir(device)) : undefined;
}

/**
 * Last resort for a connection whose server is gone or stuck: abort it through fusectl
 * (/sys/fs/fuse/connections/<minor>/abort; mounted here if needed). Pending and future requests
 * then fail with ENOTCONN and the mount can be detached.
 */
export function abortFuseConnection(device: string): boolean {
  try {
    writeFileSync(`${fusectlDir(device)}/abort`, '1');
    return true;
  } catch {
    return false;
  }
}
