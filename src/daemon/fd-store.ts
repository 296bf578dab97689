/**
 * What the daemon tells systemd over its notify socket: its state (READY, MAINPID, STOPPING), and its
 * file descriptor store (sd_notify "FDSTORE=1"; the unit's FileDescriptorStoreMax=). The supervisor
 * keeps a copy of each kernel fd it holds there (FUSE connections, /dev/cachefiles, the fanotify group)
 * under a stable name, and the mounts' registry credentials in a memfd (memory only, never on disk).
 * When systemd restarts the service (`systemctl restart`, or Restart= after a crash) it hands them to
 * the next daemon as $LISTEN_FDS/$LISTEN_FDNAMES, which adopts the mounts they belong to: they never
 * stop. systemd empties the store when the service stops for good.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, readSync, writeSync } from 'node:fs';
import { memfdCreate, setCloexec } from '../native/fd.js';
import { sendDatagram } from '../native/unix-socket.js';
import type { Credentials } from '../registry/credentials.js';
import { errorText } from '../util/errors.js';
import { log } from '../util/log.js';
import { ownUnit, unitJobs, unitProperty } from './systemd-unit.js';

const SD_LISTEN_FDS_START = 3;
const SECRETS_PREFIX = 'secrets-';

/** The store name of the FUSE connection mounted at `path`: the same in every daemon, whatever its fd number. */
export function fuseFdName(path: string): string {
  return `fuse-${createHash('sha256').update(path).digest('hex').slice(0, 32)}`;
}
export const CACHEFILES_FD_NAME = 'cachefiles';
export const FANOTIFY_FD_NAME = 'fanotify';

/** What systemd passed to this process: fds by name, and the credentials memfd's contents. */
export interface PassedFds {
  fds: Map<string, number>;
  secrets: Record<string, Credentials>;
}

function sendNotify(socket: string, message: string, fds: readonly number[] = []): boolean {
  const r = sendDatagram(socket, message, fds);
  if (r < 0) log.warn({ socket, errno: -r, message: message.split('\n')[0] }, 'cannot notify systemd');
  return r >= 0;
}

/**
 * sd_notify(3) when systemd runs the daemon (Type=notify, NotifyAccess=all): READY once the first
 * worker serves, with MAINPID, which is how a successor started by `daemon restart` (ExecReload)
 * becomes the service's main process; STOPPING. Nothing without $NOTIFY_SOCKET.
 */
export function notifySystemd(state: string): void {
  const socket = process.env.NOTIFY_SOCKET;
  if (socket !== undefined && socket !== '') sendNotify(socket, state);
}

export class FdStore {
  private secretsGeneration = 0;
  /** Secrets entries passed to us that the next `keepSecrets` replaces. */
  private staleSecrets: string[] = [];

  private constructor(private readonly socket: string) {}

  /** The store when systemd runs this daemon with a notify socket; null otherwise (nothing is sent). */
  static fromEnvironment(): FdStore | null {
    const socket = process.env.NOTIFY_SOCKET;
    return socket === undefined || socket === '' ? null : new FdStore(socket);
  }

  private notify(message: string, fds: readonly number[] = []): boolean {
    return sendNotify(this.socket, message, fds);
  }

  /**
   * Keeps a copy of `fd` under `name`. FDPOLL=0: systemd must not drop a connection's fd when it polls
   * readable or hung up in between; the daemon removes it itself when the mount ends.
   */
  keep(name: string, fd: number): void {
    this.notify(`FDSTORE=1\nFDNAME=${name}\nFDPOLL=0`, [fd]);
  }

  drop(name: string): void {
    this.notify(`FDSTORE_REMOVE=1\nFDNAME=${name}`);
  }

  /** Replaces the stored credentials: the new entry first, then the old ones (a crash in between leaves one). */
  keepSecrets(secrets: Record<string, Credentials>): void {
    const fd = memfdCreate('ondemand-secrets');
    if (fd < 0) {
      log.warn({ errno: -fd }, 'cannot make a memfd for the credentials: a restart by systemd loses them');
      return;
    }
    try {
      writeSync(fd, JSON.stringify(secrets));
      const name = `${SECRETS_PREFIX}${++this.secretsGeneration}`;
      if (!this.notify(`FDSTORE=1\nFDNAME=${name}\nFDPOLL=0`, [fd])) return;
      for (const old of this.staleSecrets) this.drop(old);
      this.staleSecrets = [name];
    } finally {
      closeSync(fd);
    }
  }

  /**
   * The fds systemd passed to this process ($LISTEN_PID is ours), close-on-exec from now on; the
   * variables are removed so no child takes them for its own. The newest credentials entry is read
   * and closed; it and any older one are replaced by the next `keepSecrets`.
   */
  takePassed(): PassedFds {
    const env = process.env;
    const count = Number(env.LISTEN_FDS ?? 0);
    const names = (env.LISTEN_FDNAMES ?? '').split(':');
    const forUs = Number(env.LISTEN_PID) === process.pid;
    for (const v of ['LISTEN_FDS', 'LISTEN_FDNAMES', 'LISTEN_PID']) delete env[v];
    const passed: PassedFds = { fds: new Map(), secrets: {} };
    if (!forUs || !Number.isInteger(count) || count <= 0) return passed;
    let newest = -1;
    for (let i = 0; i < count; i++) {
      const fd = SD_LISTEN_FDS_START + i;
      setCloexec(fd);
      const name = names[i] ?? `unnamed-${i}`;
      if (name.startsWith(SECRETS_PREFIX)) {
        const generation = Number(name.slice(SECRETS_PREFIX.length));
        if (generation > newest) {
          newest = generation;
          passed.secrets = readSecrets(fd);
        }
        this.staleSecrets.push(name);
        closeSync(fd);
        continue;
      }
      const earlier = passed.fds.get(name);
      if (earlier !== undefined) closeSync(earlier); // one name kept twice: the newer copy is the one
      passed.fds.set(name, fd);
    }
    this.secretsGeneration = Math.max(newest, 0);
    return passed;
  }
}

function readSecrets(fd: number): Record<string, Credentials> {
  try {
    const buf = Buffer.alloc(fstatSync(fd).size);
    readSync(fd, buf, 0, buf.length, 0);
    return JSON.parse(buf.toString('utf8')) as Record<string, Credentials>;
  } catch (err) {
    log.warn({ err: errorText(err) }, 'the credentials systemd kept are unreadable: mounts that need them fail to fetch');
    return {};
  }
}

/**
 * Whether systemd is restarting this service (a `restart` job of its unit is running, not a `stop`)
 * and holds at least `storedFds` fds in its store for it: only then may the mounts outlive this
 * process. Any doubt (no systemctl, no unit, a failed query, a unit without FileDescriptorStoreMax=)
 * answers no, and the daemon stops as it would without systemd, unmounting everything.
 */
export async function systemdRestartKeepsMounts(storedFds: number): Promise<boolean> {
  const unit = ownUnit();
  if (unit === null) return false;
  try {
    if (!(await unitJobs(unit)).includes('restart')) return false;
    const stored = Number(await unitProperty(unit, 'NFileDescriptorStore'));
    if (stored >= storedFds) return true;
    log.warn({ unit, stored, needed: storedFds }, 'systemd restarts the daemon but does not hold its fds (FileDescriptorStoreMax= in the unit?): stopping (mounts are unmounted)');
    return false;
  } catch (err) {
    log.warn({ unit, err: errorText(err) }, 'cannot ask systemd whether it restarts the daemon: stopping (mounts are unmounted)');
    return false;
  }
}
