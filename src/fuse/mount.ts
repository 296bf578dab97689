/**
 * Mounting a FUSE filesystem without libfuse: open /dev/fuse, mount(2) type `fuse.ondemand` with the
 * fd, start a session, wait for INIT, raise the bdi read-ahead. Unmounting reverses it; any failure
 * half-way unwinds what was made.
 */
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { MNT_DETACH, MS_NODEV, MS_NOSUID, MS_RDONLY, errno, mount, umount2 } from '../native/libc.js';
import { closeQuietly } from '../native/fuse.js';
import { MountError } from '../util/errors.js';
import { log } from '../util/log.js';
import { FuseSession, type FuseSessionOptions } from './session.js';
import type { FuseConnectionParams, FuseFilesystem } from './types.js';

export interface FuseMountOptions extends Omit<FuseSessionOptions, 'params'> {
  /** Shown as the mount source in /proc/mounts (default 'ondemand'). */
  source?: string;
  /** Let other users (and the kernel acting for them) use the mount (default true). */
  allowOther?: boolean;
  /** bdi read_ahead_kb for this mount (default 1024: 1 MiB READs instead of 128 KiB). */
  readAheadKb?: number;
  /** Give up if the kernel has not sent INIT by then (default 10 s). */
  initTimeoutMs?: number;
}

export const FUSE_FSTYPE = 'fuse.ondemand';

/** A mounted FUSE filesystem served by this process. */
export class FuseMount {
  private unmounted = false;

  private constructor(
    readonly mountpoint: string,
    readonly fd: number,
    readonly session: FuseSession,
    /** `major:minor` of the FUSE superblock (its bdi name). */
    readonly device: string,
  ) {}

  get params(): FuseConnectionParams | undefined {
    return this.session.params;
  }

  static async create(mountpoint: string, fs: FuseFilesystem, options: FuseMountOptions = {}): Promise<FuseMount> {
    let fd: number;
    try {
      fd = openSync('/dev/fuse', 'r+');
    } catch (err) {
      throw new MountError('cannot open /dev/fuse', { mountpoint }, { cause: err });
    }
    const data = [
      `fd=${fd}`, 'rootmode=40000', 'user_id=0', 'group_id=0', 'default_permissions',
      ...(options.allowOther === false ? [] : ['allow_other']),
    ].join(',');
    if (mount(options.source ?? 'ondemand', mountpoint, FUSE_FSTYPE, MS_RDONLY | MS_NOSUID | MS_NODEV, data) !== 0) {
      const e = errno();
      closeQuietly(fd);
      throw new MountError(`cannot mount FUSE at ${mountpoint}: errno ${e}`, { mountpoint }, { errno: e });
    }
    const session = FuseSession.start(fd, fs, { ...options, name: options.name ?? mountpoint });
    try {
      await withTimeout(session.ready(), options.initTimeoutMs ?? 10_000, `FUSE INIT did not arrive at ${mountpoint}`);
      const device = mountDevice(mountpoint);
      setReadAhead(device, options.readAheadKb ?? 1024);
      return new FuseMount(mountpoint, fd, session, device);
    } catch (err) {
      umount2(mountpoint, MNT_DETACH);
      await session.stop().catch(() => undefined);
      closeQuietly(fd);
      throw err instanceof MountError ? err : new MountError(`FUSE mount at ${mountpoint} failed`, { mountpoint }, { cause: err });
    }
  }

  /**
   * Serves a FUSE mount that already exists and has been initialised, from an fd inherited from a
   * supervisor (pidfd_getfd) together with the parameters INIT settled (see FuseSession.fromFd).
   */
  static adopt(mountpoint: string, fd: number, fs: FuseFilesystem, params: FuseConnectionParams, options: Omit<FuseSessionOptions, 'params'> = {}): FuseMount {
    const session = FuseSession.fromFd(fd, fs, params, { ...options, name: options.name ?? mountpoint });
    return new FuseMount(mountpoint, fd, session, mountDevice(mountpoint));
  }

  /**
   * Unmounts and closes the connection. `lazy` detaches a busy mount (MNT_DETACH) instead of failing
   * with EBUSY; the session then keeps serving until the last user is gone.
   */
  async unmount(options: { lazy?: boolean } = {}): Promise<void> {
    if (this.unmounted) return;
    if (umount2(this.mountpoint, 0) !== 0) {
      const e = errno();
      if (e === 16 /* EBUSY */ && !options.lazy) {
        throw new MountError(`${this.mountpoint} is busy`, { mountpoint: this.mountpoint }, { errno: e });
      }
      if (e !== 22 /* EINVAL: not mounted any more */ && umount2(this.mountpoint, MNT_DETACH) !== 0 && errno() !== 22) {
        throw new MountError(`cannot unmount ${this.mountpoint}: errno ${errno()}`, { mountpoint: this.mountpoint });
      }
      if (e === 16) {
        this.unmounted = true;
        void this.session.whenEnded().then(() => closeQuietly(this.fd));
        return;
      }
    }
    this.unmounted = true;
    // Unmounting kills the superblock, which aborts the connection: the reader sees ENODEV.
    await withTimeout(this.session.whenEnded(), 5000, 'FUSE reader did not stop').catch(async (err: unknown) => {
      log.warn({ mountpoint: this.mountpoint, err: String(err) }, 'stopping FUSE reader');
      await this.session.stop();
    });
    closeQuietly(this.fd);
  }
}

/** `major:minor` of the filesystem mounted at `mountpoint`, from /proc/self/mountinfo (no stat: it would wait for INIT). */
export function mountDevice(mountpoint: string): string {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const f = lines[i]!.split(' ');
    if (f[4] === escapeMountPath(mountpoint)) return f[2]!;
  }
  throw new MountError(`${mountpoint} is not in /proc/self/mountinfo`, { mountpoint });
}

function escapeMountPath(p: string): string {
  return p.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/** Sets /sys/class/bdi/<maj:min>/read_ahead_kb; best effort (logged). */
export function setReadAhead(device: string, kb: number): void {
  try {
    writeFileSync(`/sys/class/bdi/${device}/read_ahead_kb`, String(kb));
  } catch (err) {
    log.warn({ device, err: String(err) }, 'cannot set FUSE read_ahead_kb');
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new MountError(message)), ms); }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Last resort for a connection whose server is gone or stuck: abort it through fusectl
 * (/sys/fs/fuse/connections/<minor>/abort; mounted here if needed). Pending and future requests
 * then fail with ENOTCONN and the mount can be detached.
 */
export function abortFuseConnection(device: string): boolean {
  const minor = device.split(':')[1];
  const dir = '/sys/fs/fuse/connections';
  try {
    if (!readFileSync('/proc/self/mounts', 'utf8').includes(` ${dir} fusectl `)) mount('fusectl', dir, 'fusectl', 0, null);
    writeFileSync(`${dir}/${minor}/abort`, '1');
    return true;
  } catch {
    return false;
  }
}
