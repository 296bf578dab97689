/**
 * The supervisor: the daemon's long-lived process. It owns every kernel fd and kernel object a mount
 * makes and keeps the record file (kernel-requests.ts), and runs the worker (which serves requests and
 * the control socket) as a child, restarting it whenever it dies (worker-process.ts). A worker crash
 * therefore never closes a kernel connection: the kernel queues requests until the new worker adopts
 * the fd.
 *
 * `ondemand daemon restart` (SIGUSR2) replaces the supervisor itself without unmounting anything: this
 * one stops its worker, starts its successor (the same command line) and waits; the successor takes
 * duplicates of every kernel fd (pidfd_getfd) and the records, signals SIGUSR1, and once this process
 * has exited (freeing the run dir's and the cache's locks) starts a worker that re-attaches every
 * mount, as after a worker crash. Readers wait meanwhile; if the successor fails, this one goes on.
 *
 * Under systemd, every kernel fd also goes to the service's fd store (fd-store.ts): `systemctl restart`
 * (SIGTERM while a restart job runs) exits without unmounting, and the next daemon adopts the mounts
 * with the fds systemd passes it, as it does after a crash that Restart= restarts.
 */
import { spawn } from 'node:child_process';
import { constants, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { lockCacheDir, type CacheLock } from '../cache/lock.js';
import { configToJson, type ResolvedConfig } from '../config/resolve.js';
import { detect } from '../mount/mode-choice.js';
import { LOCK_EX, tryFlock } from '../native/flock.js';
import { MountError, errorText } from '../util/errors.js';
import { log, reopenLog } from '../util/log.js';
import { FdStore, notifySystemd, systemdRestartKeepsMounts } from './fd-store.js';
import { KernelRequests } from './kernel-requests.js';
import { controlSocketPath, daemonLockPath, pidFilePath, recordFilePath, runDir } from './paths.js';
import type { IpcFromSupervisor, IpcToSupervisor, SupervisorRequest } from './protocol.js';
import { toWire } from './wire-errors.js';
import { WorkerProcess } from './worker-process.js';
import type { Credentials } from '../registry/credentials.js';
import { makeDirs } from '../util/make-dirs.js';

/** Set by a restarting daemon for its successor: the predecessor's pid. */
const HANDOVER_ENV = 'ONDEMAND_HANDOVER_FROM';
/** How long each side of a hand-over waits for the other. */
const HANDOVER_MS = 20_000;

function takeHandoverEnv(): number | undefined {
  const v = process.env[HANDOVER_ENV];
  delete process.env[HANDOVER_ENV];
  const pid = v === undefined ? NaN : Number(v);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Replaces the pid file in one step: a reader never sees it empty. */
function writePidFile(dir: string, pid: number): void {
  const tmp = `${pidFilePath(dir)}.${process.pid}`;
  writeFileSync(tmp, `${pid}\n`);
  renameSync(tmp, pidFilePath(dir));
}

/** Calls `f` until it stops throwing, for up to `ms`; then throws its last error with `why`. */
async function retryUntil<T>(ms: number, f: () => T, why: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return f();
    } catch (err) {
      if (Date.now() > deadline) throw new MountError(`${why}: ${errorText(err)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export interface SupervisorOptions {
  cacheDir: string;
  /** The daemon's configuration: every worker gets it as it is. */
  config: ResolvedConfig;
}

export class Supervisor {
  private readonly dir = runDir();
  private readonly kernel: KernelRequests;
  private readonly store = FdStore.fromEnvironment();
  private worker: WorkerProcess | null = null;
  private stopping = false;
  private exitResolve: (() => void) | null = null;
  private everReady = false;
  /** Resolves once the mounts are adopted and the first worker started: what a stop waits for. */
  private started: Promise<void> = Promise.resolve();
  /** Between SIGUSR2 and the successor's SIGUSR1 (or its failure). */
  private handingOver = false;
  private cacheLock: (CacheLock & { fd: number }) | null = null;
  /** Set when the daemon stops because its first worker could not start. */
  failure: string | null = null;

  constructor(private readonly options: SupervisorOptions) {
    this.kernel = new KernelRequests(recordFilePath(this.dir), options.cacheDir, this.dir, this.store);
  }

  /** Runs until shut down. Throws when another daemon owns the run dir. */
  async run(): Promise<void> {
    // Before anything is adopted: a stop that comes meanwhile waits for it, then undoes it all.
    let markStarted = (): void => undefined;
    this.started = new Promise<void>((r) => { markStarted = r; });
    process.on('SIGTERM', () => void this.stopOrRestart('SIGTERM'));
    process.on('SIGINT', () => void this.stopOrRestart('SIGINT'));
    makeDirs(this.dir, 0o700);
    const predecessor = takeHandoverEnv();
    const passed = this.store?.takePassed();
    if (predecessor !== undefined) {
      await this.takeOver(predecessor);
    } else {
      this.takeRunDir();
      // Held here, not by the worker: a worker that dies must not free the cache for a `cache gc` to
      // evict its mounts' blobs before the next worker pins them again.
      this.cacheLock = lockCacheDir(this.options.cacheDir);
      this.kernel.adoptFanotify();
      if (passed && passed.fds.size > 0) {
        const { adopted, dead } = this.kernel.adoptFromStore(passed);
        log.info({ mounts: adopted, dead: dead.length }, 'systemd passed the previous daemon\'s kernel fds: its mounts are ours');
        await this.kernel.undoStale(dead);
      } else {
        await this.kernel.undoStale();
      }
    }
    this.kernel.persist();
    const report = detect(this.options.cacheDir);
    log.info({ mode: report.mode, reason: report.reason }, 'kernel features probed');
    process.on('SIGUSR2', () => void this.handOver());
    process.on('SIGHUP', () => {
      reopenLog();
      this.worker?.signal('SIGHUP');
      log.info('log reopened (SIGHUP)');
    });
    const done = new Promise<void>((r) => { this.exitResolve = r; });
    this.worker = new WorkerProcess(
      {
        cacheDir: this.options.cacheDir, supervisorPid: process.pid, runDir: this.dir, features: report.features,
        config: JSON.stringify(configToJson(this.options.config)),
      },
      {
        request: (msg) => this.onRequest(msg),
        died: (code, signal) => {
          if (this.handingOver) return false;
          this.kernel.workerDied();
          if (this.everReady || this.kernel.size > 0) return true;
          // The first worker never came up (bad cache dir, ...): nothing to protect, so give up loudly.
          this.failure = `the daemon's worker failed to start (exit ${code ?? signal}); see the log above`;
          void this.shutdown('worker failed to start');
          return false;
        },
      },
    );
    this.worker.start();
    markStarted();
    await done;
  }

  /**
   * One daemon per run dir: the one holding an exclusive flock on its lock file, for its whole life
   * (the kernel drops it when the process dies, so a crashed daemon never blocks the next). Only the
   * holder writes the pid file or touches socket and records.
   */
  private takeRunDir(): void {
    const fd = openSync(daemonLockPath(this.dir), constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    if (!tryFlock(fd, LOCK_EX)) {
      throw new MountError(`a daemon is already running for ${this.dir} (it holds ${daemonLockPath(this.dir)})`, { path: this.dir });
    }
    // Never closed: the lock lives as long as this process.
    writePidFile(this.dir, process.pid);
  }

  /** A successor: the predecessor's fds and records first (it waits for us), then its locks once it has exited. */
  private async takeOver(predecessor: number): Promise<void> {
    const secrets = JSON.parse(readFileSync(0, 'utf8') || '{}') as Record<string, Credentials>;
    const mounts = this.kernel.adoptFrom(predecessor, secrets);
    log.info({ predecessor, mounts }, 'took over the mounts of the daemon that is restarting');
    process.kill(predecessor, 'SIGUSR1');
    await retryUntil(HANDOVER_MS, () => this.takeRunDir(), 'the restarting daemon did not exit');
    this.cacheLock = await retryUntil(HANDOVER_MS, () => lockCacheDir(this.options.cacheDir), 'the restarting daemon did not free the cache');
    this.kernel.adoptFanotify();
  }

  /**
   * `daemon restart`: hands every mount to a successor and exits without unmounting. The worker goes
   * first (requests queue in the kernel), so only one ever serves a connection.
   */
  private async handOver(): Promise<void> {
    if (this.stopping || this.handingOver) return;
    this.handingOver = true;
    log.info('daemon restart: handing the mounts over to a new daemon');
    await this.worker?.kill();
    this.kernel.persist();
    let successor = 0;
    const adopted = new Promise<boolean>((resolve) => {
      const child = spawn(process.execPath, process.argv.slice(1), {
        cwd: '/', detached: true, env: { ...process.env, [HANDOVER_ENV]: String(process.pid) }, stdio: ['pipe', 'inherit', 'inherit'],
      });
      successor = child.pid ?? 0;
      child.stdin?.end(JSON.stringify(this.kernel.secretsToHandOver()));
      const timer = setTimeout(() => resolve(false), HANDOVER_MS);
      process.once('SIGUSR1', () => { clearTimeout(timer); resolve(true); });
      child.once('exit', (code, signal) => { clearTimeout(timer); resolve(false); log.error({ code, signal }, 'the new daemon exited before taking over'); });
      child.unref();
    });
    if (await adopted) {
      // The successor takes the lock once this process has gone; until then the pid file names it, so
      // the fanotify group's holder (which hears of this exit at once) sees a daemon, not a dead one
      // whose readers it must answer EIO.
      writePidFile(this.dir, successor);
      log.info('the new daemon has the mounts; exiting');
      process.exit(0);
    }
    log.error('daemon restart failed: serving on');
    this.handingOver = false;
    this.worker?.start();
  }

  /**
   * SIGTERM (or SIGINT): a stop, unless systemd is restarting the service and its fd store holds every kernel fd:
   * then the worker goes (requests queue in the kernel) and this process exits without unmounting;
   * the next daemon gets the fds from systemd and adopts the mounts.
   */
  private async stopOrRestart(signal: string): Promise<void> {
    await this.started;
    if (this.stopping || this.handingOver) return;
    if (this.store && this.kernel.size > 0 && (await systemdRestartKeepsMounts(this.kernel.storedFdsNeeded()))) {
      this.handingOver = true;
      log.info({ mounts: this.kernel.size }, 'systemd restarts the daemon and keeps its fds: exiting without unmounting');
      notifySystemd('STOPPING=1');
      await this.worker?.kill();
      this.kernel.persist();
      process.exit(0);
    }
    await this.shutdown(signal);
  }

  private async onRequest(msg: IpcToSupervisor): Promise<IpcFromSupervisor> {
    try {
      return { rid: msg.rid, ok: true, result: await this.handle(msg.req) };
    } catch (err) {
      log.warn({ op: msg.req.op, err: errorText(err) }, 'supervisor request failed');
      return { rid: msg.rid, ok: false, error: toWire(err) };
    }
  }

  private async handle(req: SupervisorRequest): Promise<unknown> {
    switch (req.op) {
      case 'ready':
        if (!this.everReady) notifySystemd(`READY=1\nMAINPID=${process.pid}`);
        this.everReady = true;
        return null;
      case 'shutdown':
        setImmediate(() => void this.shutdown('request'));
        return null;
      case 'list':
        return { ...this.kernel.list(), restarts: this.worker?.restarts ?? 0 };
      case 'cacheLock':
        if (!this.cacheLock) throw new MountError('the cache directory is not locked');
        return { fd: this.cacheLock.fd };
      default:
        return this.kernel.handle(req);
    }
  }

  /** Stops the worker (it unmounts everything on SIGTERM), undoes what is left, removes socket and pid file. */
  private async shutdown(why: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    log.info({ why }, 'daemon stopping');
    notifySystemd('STOPPING=1');
    await this.worker?.stop();
    await this.kernel.undoAll();
    this.cacheLock?.release();
    rmSync(controlSocketPath(this.dir), { force: true });
    rmSync(pidFilePath(this.dir), { force: true });
    rmSync(recordFilePath(this.dir), { force: true });
    this.exitResolve?.();
  }
}
