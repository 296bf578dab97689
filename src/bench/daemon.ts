/**
 * The bench's own daemon: the shipped `ondemand daemon`, started as `mount` starts one but with a run
 * dir and cache dir of the bench's own (so the host's daemon, its mounts and its cache are never
 * touched), spoken to over its control socket exactly as `ondemand mount`/`umount`/`status` do.
 * Restarting it over an emptied cache dir is how a cold phase starts from an empty cache.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DAEMON_CONFIG_ENV, configToJson, type ResolvedConfig } from '../config/resolve.js';
import { request } from '../daemon/client.js';
import { controlSocketPath, daemonLogPath } from '../daemon/paths.js';
import type { MountModeRequest, MountStatus } from '../mount/types.js';
import type { Credentials } from '../registry/credentials.js';
import { BenchError, MountError, errorText } from '../util/errors.js';
import { compiledThreadUrl } from '../util/thread-url.js';
import { makeDirs } from '../util/make-dirs.js';

/** The CLI's entry, compiled (under vitest this module is a .ts source: then the build's, checked current). */
const cliMain = (): string => fileURLToPath(compiledThreadUrl(import.meta.url, '../cli/main.js', 'EBENCH'));

/** Clock ticks per second of /proc/PID/stat (USER_HZ: 100 on every Linux architecture Node runs on). */
const USER_HZ = 100;

export interface ImageAccess {
  insecure: boolean;
  platform?: string;
  credentials?: Credentials | null;
}

/** The caller's configuration for the bench's daemon: its cache dir, no metrics endpoint, no log file of the host's. */
export function benchDaemonConfig(config: ResolvedConfig, cacheDir: string): ResolvedConfig {
  const by = { kind: 'flag', name: 'ondemand bench' } as const;
  return {
    file: config.file,
    settings: {
      ...config.settings,
      'cache.dir': { value: cacheDir, source: by },
      'cache.max_size': { value: null, source: by },
      'prefetch.enabled': { value: false, source: by },
      'metrics.address': { value: null, source: by },
      'log.file': { value: null, source: by },
    },
  };
}

/** User + system CPU time of process `pid` so far, in ms (0 when it is gone). */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / USER_HZ;
  } catch {
    return 0;
  }
}

export class BenchDaemon {
  private child: ChildProcess | null = null;
  readonly socket: string;

  constructor(readonly runDir: string, readonly cacheDir: string, private readonly config: ResolvedConfig) {
    this.socket = controlSocketPath(runDir);
  }

  /** Starts the daemon (over an empty cache dir when `emptyCache`) and waits until it answers. */
  async start(emptyCache: boolean): Promise<void> {
    if (this.child) throw new BenchError('the bench daemon is already running');
    if (emptyCache) rmSync(this.cacheDir, { recursive: true, force: true });
    makeDirs(this.runDir, 0o700);
    makeDirs(this.cacheDir);
    const env = {
      ...process.env,
      ONDEMAND_RUN_DIR: this.runDir,
      ONDEMAND_CACHE_DIR: this.cacheDir,
      [DAEMON_CONFIG_ENV]: JSON.stringify(configToJson(benchDaemonConfig(this.config, this.cacheDir))),
    };
    const logFd = openSync(daemonLogPath(this.runDir), 'a');
    const child = spawn(process.execPath, [cliMain(), 'daemon'], { cwd: '/', env, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    this.child = child;
    // Typed wide: set in a callback, so the checks below must not narrow it to null.
    let exited = null as string | null;
    child.once('exit', (code, signal) => { exited = `exit ${code ?? signal}`; });
    for (const deadline = Date.now() + 60_000; ;) {
      try {
        await request({ op: 'ping' }, this.socket);
        return;
      } catch (err) {
        if (exited !== null) {
          this.child = null;
          throw new MountError(`the bench's daemon failed to start (${exited}); see ${daemonLogPath(this.runDir)}`, {}, { cause: err });
        }
        if (Date.now() > deadline) throw new MountError(`the bench's daemon did not answer within 60 s; see ${daemonLogPath(this.runDir)}`, {}, { cause: err });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGTERM (the daemon unmounts everything it serves, then exits); SIGKILL if it has not within `ms`. */
  async stop(ms = 60_000): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    await gone;
    clearTimeout(timer);
  }

  get running(): boolean {
    return this.child !== null;
  }

  async mount(image: string, mountpoint: string, mode: MountModeRequest, access: ImageAccess, prefetch = false): Promise<void> {
    await request({
      op: 'mount', image, mountpoint, mode, prefetch, insecure: access.insecure,
      ...(access.platform !== undefined ? { platform: access.platform } : {}),
      ...(access.credentials !== undefined ? { credentials: access.credentials } : {}),
    }, this.socket);
  }

  /** Unmounts; a mount still busy (a start-up's processes exiting) is tried again for `ms`, then detached. */
  async umount(mountpoint: string, ms = 10_000): Promise<void> {
    for (const deadline = Date.now() + ms; ;) {
      try {
        await request({ op: 'umount', mountpoint }, this.socket);
        return;
      } catch (err) {
        if (Date.now() > deadline) {
          await request({ op: 'umount', mountpoint, lazy: true }, this.socket).catch((e: unknown) => {
            throw new MountError(`cannot unmount ${mountpoint}: ${errorText(err)}; lazily: ${errorText(e)}`, { mountpoint }, { cause: e });
          });
          return;
        }
        if (!/busy/i.test(errorText(err))) throw err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async mountStatus(mountpoint: string): Promise<MountStatus> {
    const s = await request({ op: 'status' }, this.socket);
    const m = s.mounts.find((x) => x.mountpoint === mountpoint);
    if (!m) throw new MountError(`${mountpoint} is not among the bench daemon's mounts`, { mountpoint });
    return m;
  }

  async workerPid(): Promise<number> {
    return (await request({ op: 'status' }, this.socket)).daemon.workerPid;
  }

  /** Waits until the mount's prefetch is done (every blob present). */
  async waitPrefetched(mountpoint: string, ms = 30 * 60_000): Promise<void> {
    for (const deadline = Date.now() + ms; ;) {
      const m = await this.mountStatus(mountpoint);
      if (m.prefetch === 'failed') throw new MountError(`prefetch of ${mountpoint} failed: ${m.prefetchError ?? 'no reason given'}`, { mountpoint });
      if (m.prefetch === 'done' && m.bytesPresent >= m.bytesTotal) return;
      if (Date.now() > deadline) throw new MountError(`prefetch of ${mountpoint} did not finish within ${ms / 1000} s`, { mountpoint });
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
