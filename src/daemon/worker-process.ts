/**
 * The worker as a child process of the supervisor: started with its arguments, restarted whenever it
 * dies (with a growing delay when it dies right after starting, never given up on: giving up would
 * leave every kernel connection with nobody answering), stopped at shutdown.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Features } from '../transport/kernel-features.js';
import { log } from '../util/log.js';
import { isRunning } from '../util/process.js';
import type { IpcFromSupervisor, IpcToSupervisor } from './protocol.js';

/** Arguments the worker gets (as JSON in argv[2]). */
export interface WorkerArgs {
  cacheDir: string;
  restarts: number;
  supervisorPid: number;
  runDir: string;
  /** Probed once by the supervisor: a restarted worker must come back fast (reads wait for it). */
  features: Features;
  /** The daemon's resolved configuration (config/resolve.ts ConfigJson, as text). */
  config: string;
}

const ENTRY = 'worker-main.js';

/**
 * Workers whose supervisor is dead and which still run, with the run dir they served (every process
 * of this machine's /proc that this user may read). A worker sees its supervisor's death at once and
 * kills itself; one that is stopped or stuck does not.
 */
export function orphanedWorkers(): { pid: number; runDir: string }[] {
  const out: { pid: number; runDir: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const [, entry, json] = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (!entry?.endsWith(`/${ENTRY}`) || json === undefined) continue;
      const args = JSON.parse(json) as Partial<WorkerArgs>;
      if (typeof args.runDir !== 'string' || typeof args.supervisorPid !== 'number') continue;
      if (!isRunning(args.supervisorPid) && isRunning(Number(name))) out.push({ pid: Number(name), runDir: args.runDir });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out;
}

const RESTART_DELAY_MS = 200;
const MAX_RESTART_DELAY_MS = 5_000;
const STOP_GRACE_MS = 20_000;

export interface WorkerEvents {
  /** A request from the (current) worker; the answer goes back to it. */
  request(msg: IpcToSupervisor): Promise<IpcFromSupervisor>;
  /** The worker died. Return false to not restart it (the daemon gives up). */
  died(code: number | null, signal: NodeJS.Signals | null, restarts: number): boolean;
}

export class WorkerProcess {
  private child: ChildProcess | null = null;
  private stopping = false;
  private lastStart = 0;
  private quickDeaths = 0;
  restarts = 0;

  constructor(private readonly args: Omit<WorkerArgs, 'restarts'>, private readonly events: WorkerEvents) {}

  start(): void {
    const entry = fileURLToPath(new URL(`./${ENTRY}`, import.meta.url));
    const args: WorkerArgs = { ...this.args, restarts: this.restarts };
    this.lastStart = Date.now();
    const child = fork(entry, [JSON.stringify(args)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
    this.child = child;
    log.info({ workerPid: child.pid, restarts: this.restarts }, 'worker started');
    child.on('message', (msg: IpcToSupervisor) => {
      void this.events.request(msg).then((reply) => { if (child.connected) child.send(reply); });
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      if (this.stopping) return;
      if (!this.events.died(code, signal, this.restarts)) return;
      this.restarts += 1;
      // Only deaths in a row right after starting back off: one crash long after the last costs nothing.
      this.quickDeaths = Date.now() - this.lastStart < 2_000 ? this.quickDeaths + 1 : 0;
      const delay = this.quickDeaths > 0 ? Math.min(MAX_RESTART_DELAY_MS, RESTART_DELAY_MS * 2 ** Math.min(this.quickDeaths, 5)) : 0;
      log.warn({ code, signal, restarts: this.restarts, delay }, 'worker died; restarting it');
      setTimeout(() => this.start(), delay);
    });
  }

  /** Passes a signal the worker handles (SIGHUP: reopen its log). */
  signal(sig: NodeJS.Signals): void {
    this.child?.kill(sig);
  }

  /** Kills the worker without unmounting anything (a hand-over: the successor's worker re-attaches); resolves once it exited. */
  async kill(): Promise<void> {
    const w = this.child;
    if (!w || w.exitCode !== null || w.signalCode !== null) return;
    const exited = new Promise<void>((r) => w.once('exit', () => r()));
    w.kill('SIGKILL');
    await exited;
  }

  /** Asks the worker to unmount everything and exit, SIGKILL if it takes too long; resolves once it exited. */
  async stop(): Promise<void> {
    this.stopping = true;
    const w = this.child;
    if (!w || w.exitCode !== null) return;
    const exited = new Promise<void>((r) => w.once('exit', () => r()));
    const stop: IpcFromSupervisor = { stop: true };
    if (w.connected) w.send(stop);
    else w.kill('SIGKILL');
    const timer = setTimeout(() => w.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }
}
