/**
 * The CLI's side of the control socket, and starting the host's daemon when none is running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { MountError, systemCode } from '../util/errors.js';
import { controlSocketPath, daemonLogPath, pidFilePath, runDir } from './paths.js';
import type { ControlRequest, ControlResponse, ControlResults } from './protocol.js';
import { fromWire } from './wire-errors.js';

const NOT_LISTENING = new Set(['ENOENT', 'ECONNREFUSED']);

/** One request on a fresh connection. Throws a NotRunning marker error when nobody listens. */
/** How long the daemon may take to answer each request (a mount fetches the bootstrap and every TOC). */
const ANSWER_WITHIN_MS: Record<ControlRequest['op'], number> = { ping: 10_000, status: 20_000, umount: 120_000, shutdown: 120_000, mount: 600_000 };

export function request<K extends ControlRequest['op']>(req: ControlRequest & { op: K }, socketPath = controlSocketPath()): Promise<ControlResults[K]> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    socket.setTimeout(ANSWER_WITHIN_MS[req.op], () => {
      socket.destroy();
      reject(new MountError(`the daemon did not answer ${req.op} within ${ANSWER_WITHIN_MS[req.op] / 1000} s (see ${daemonLogPath()})`));
    });
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify({ ...req, id: 1 }) + '\n'));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      socket.end();
      const res = JSON.parse(buffered.slice(0, nl)) as ControlResponse;
      if (res.ok) resolve(res.result as ControlResults[K]);
      else reject(fromWire(res.error));
    });
    socket.on('error', (err) => reject(NOT_LISTENING.has(systemCode(err) ?? '') ? new DaemonNotRunning(err) : err));
    socket.on('close', () => reject(new MountError('the daemon closed the connection without answering (did it crash?)')));
  });
}

export class DaemonNotRunning extends Error {
  constructor(cause: unknown) {
    super('the ondemand daemon is not running', { cause });
  }
}

/** The supervisor's pid from the pid file, when that process is alive. */
export function livePid(dir = runDir()): number | null {
  try {
    const pid = Number(readFileSync(pidFilePath(dir), 'utf8').trim());
    if (!(pid > 0)) return null;
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

/**
 * Sends a request, riding out a worker restart: while the supervisor is alive but its worker is not
 * listening yet, retries for `waitMs`. Throws DaemonNotRunning when there is no daemon at all.
 */
export async function requestDaemon<K extends ControlRequest['op']>(req: ControlRequest & { op: K }, waitMs = 15_000): Promise<ControlResults[K]> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      return await request<K>(req);
    } catch (err) {
      if (!(err instanceof DaemonNotRunning) || livePid() === null || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export interface StartOptions {
  cacheDir: string;
  /** Keep the daemon attached to this terminal (its logs on stderr) instead of detaching it. */
  foreground?: boolean;
}

/** Reuses the running daemon or starts one; returns the child when this call started an attached one. */
export async function ensureDaemon(options: StartOptions): Promise<{ started: boolean; child?: ChildProcess }> {
  try {
    const ping = await requestDaemon({ op: 'ping' });
    if (ping.cacheDir !== options.cacheDir) {
      throw new MountError(`the running daemon (pid ${ping.pid}) uses cache ${ping.cacheDir}, not ${options.cacheDir}; stop it first (kill ${ping.pid})`);
    }
    return { started: false };
  } catch (err) {
    if (!(err instanceof DaemonNotRunning)) throw err;
  }
  const dir = runDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  const args = [main, 'daemon', '--cache-dir', options.cacheDir];
  let child: ChildProcess;
  if (options.foreground) {
    child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  } else {
    const logFd = openSync(daemonLogPath(dir), 'a');
    child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', logFd, logFd] });
    child.unref();
  }
  let exited: string | null = null;
  child.once('exit', (code, signal) => { exited = `exit ${code ?? signal}`; });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await request({ op: 'ping' });
      return { started: true, ...(options.foreground ? { child } : {}) };
    } catch (err) {
      if (!(err instanceof DaemonNotRunning)) throw err;
    }
    // Lost a start race to another CLI: its daemon owns the pid file; wait for that one instead.
    if (exited !== null && livePid(dir) === null) throw new MountError(`the daemon failed to start (${exited}); see ${daemonLogPath(dir)}`);
    if (Date.now() > deadline) throw new MountError(`the daemon did not open ${controlSocketPath(dir)} within 30 s; see ${daemonLogPath(dir)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
