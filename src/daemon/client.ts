/**
 * The CLI's side of the control socket, and starting the host's daemon when none is running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { DAEMON_CONFIG_ENV, configToJson, setting, type ResolvedConfig } from '../config/resolve.js';
import { MountError, errorText, systemCode } from '../util/errors.js';
import { controlSocketPath, daemonLogPath, pidFilePath, runDir } from './paths.js';
import type { ControlRequest, ControlResponse, ControlResults } from './protocol.js';
import { fromWire } from './wire-errors.js';
import { makeDirs } from '../util/make-dirs.js';

/** No socket there (ENOTDIR: the run dir's path runs through a file, so no daemon can be there either). */
const NOT_LISTENING = new Set(['ENOENT', 'ECONNREFUSED', 'ENOTDIR']);

/** One request on a fresh connection. Throws a NotRunning marker error when nobody listens. */
/** How long the daemon may take to answer each request (a mount fetches the bootstrap and every TOC). */
const ANSWER_WITHIN_MS: Record<ControlRequest['op'], number> = { ping: 10_000, status: 20_000, umount: 120_000, shutdown: 120_000, mount: 600_000, gc: 600_000, verify: 3_600_000 };

export function request<K extends ControlRequest['op']>(
  req: ControlRequest & { op: K }, socketPath = controlSocketPath(), answerWithinMs = ANSWER_WITHIN_MS[req.op],
): Promise<ControlResults[K]> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    socket.setTimeout(answerWithinMs, () => {
      socket.destroy();
      reject(new MountError(`the daemon did not answer ${req.op} within ${answerWithinMs / 1000} s (see ${daemonLogPath()})`));
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
  /** The configuration the daemon runs with if this call starts it (the caller's, resolved); its cache.dir must be the running daemon's. */
  config: ResolvedConfig;
  /** Keep the daemon attached to this terminal (its logs on stderr) instead of detaching it. */
  foreground?: boolean;
}

/** Makes the run dir and checks the daemon can write there: one clear line when it cannot. */
function prepareRunDir(dir: string): void {
  try {
    makeDirs(dir, 0o700);
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new MountError(`cannot use the run dir ${dir}: ${systemCode(err) ?? errorText(err)} (set $ONDEMAND_RUN_DIR to a writable directory)`, { path: dir }, { cause: err });
  }
}

/** Most of the log read back for a start failure: the fatal line is among the last few. */
const FAILURE_TAIL_BYTES = 64 * 1024;

/**
 * Why a daemon that exited did not start, from what it wrote to its log after `offset`: the first fatal
 * log line (the worker's, which names the real cause), else the daemon's own last `ondemand: ` line.
 */
export function startFailure(logPath: string, offset: number): string | null {
  let text: string;
  try {
    const fd = openSync(logPath, 'r');
    try {
      const size = fstatSync(fd).size;
      const from = Math.max(offset, size - FAILURE_TAIL_BYTES);
      const buf = Buffer.alloc(Math.max(0, size - from));
      text = buf.subarray(0, readSync(fd, buf, 0, buf.length, from)).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
  let fatal: string | null = null;
  let last: string | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('ondemand: ')) last = line.slice('ondemand: '.length);
    if (fatal !== null || !line.startsWith('{')) continue;
    try {
      const rec = JSON.parse(line) as { level?: unknown; err?: unknown; msg?: unknown };
      if (typeof rec.level === 'number' && rec.level >= 60) fatal = typeof rec.err === 'string' ? rec.err : String(rec.msg);
    } catch { /* not a log record */ }
  }
  return fatal ?? last;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Reuses the running daemon or starts one; returns the child when this call started an attached one. */
export async function ensureDaemon(options: StartOptions): Promise<{ started: boolean; child?: ChildProcess }> {
  const dir = runDir();
  const cacheDir = setting(options.config, 'cache.dir');
  try {
    const ping = await requestDaemon({ op: 'ping' });
    if (ping.cacheDir !== cacheDir) {
      throw new MountError(`the running daemon (pid ${ping.pid}) uses cache ${ping.cacheDir}, not ${cacheDir}; stop it first (kill ${ping.pid})`);
    }
    return { started: false };
  } catch (err) {
    if (!(err instanceof DaemonNotRunning)) throw err;
  }
  // A process that holds the pid file and has not answered while requestDaemon waited: not a starting daemon.
  const silentHolder = livePid(dir);
  prepareRunDir(dir);
  const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  const args = [main, 'daemon'];
  const env = { ...process.env, [DAEMON_CONFIG_ENV]: JSON.stringify(configToJson(options.config)) };
  const logPath = daemonLogPath(dir);
  // The daemon's fatal line is in the configured log file when there is one (stdout/stderr still go to daemon.log).
  const configuredLog = setting(options.config, 'log.file');
  let logStart = 0;
  let child: ChildProcess;
  // cwd '/': a daemon must not keep the caller's directory (perhaps inside another mount) busy.
  if (options.foreground) {
    child = spawn(process.execPath, args, { cwd: '/', env, stdio: ['ignore', 'inherit', 'inherit'] });
  } else {
    const logFd = openSync(logPath, 'a');
    logStart = fstatSync(logFd).size;
    child = spawn(process.execPath, args, { cwd: '/', env, detached: true, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    child.unref();
  }
  const configuredLogStart = configuredLog !== null ? fileSize(configuredLog) : 0;
  // Typed wide: set in a callback, so the checks below must not narrow it to null.
  let exited = null as string | null;
  child.once('exit', (code, signal) => { exited = `exit ${code ?? signal}`; });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await request({ op: 'ping' });
      return { started: true, ...(options.foreground ? { child } : {}) };
    } catch (err) {
      if (!(err instanceof DaemonNotRunning)) throw err;
    }
    // Ours exited: fail with its reason, unless another daemon took the pid file meanwhile (a start race
    // lost to another CLI: wait for that one).
    const holder = livePid(dir);
    if (exited !== null && (holder === null || holder === silentHolder)) {
      if (options.foreground) throw new MountError(`the daemon failed to start (${exited}): see its output above`);
      const why = (configuredLog !== null ? startFailure(configuredLog, configuredLogStart) : null) ?? startFailure(logPath, logStart) ?? exited;
      throw new MountError(`the daemon failed to start: ${why} (log: ${configuredLog ?? logPath})`);
    }
    if (Date.now() > deadline) throw new MountError(`the daemon did not open ${controlSocketPath(dir)} within 30 s; see ${logPath}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
