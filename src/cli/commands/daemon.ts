import { readFileSync } from 'node:fs';
import { defineCommand, out } from '../command.js';
import { applyLogConfig, cliConfig } from '../config.js';
import { setting } from '../../config/resolve.js';
import { DaemonNotRunning, ensureDaemon, livePid, request } from '../../daemon/client.js';
import { runDir } from '../../daemon/paths.js';
import { Supervisor } from '../../daemon/supervisor.js';
import { MountError, errorText } from '../../util/errors.js';

const ACTIONS = ['run', 'start', 'stop', 'status', 'restart'] as const;
/** How long stop and restart wait for the daemon (stop unmounts everything first). */
const WAIT_MS = 60_000;

async function waitFor(check: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

const SIGUSR2 = 12;

/** Whether process `pid` has a handler for signal `sig` (SigCgt in /proc/PID/status). */
function catchesSignal(pid: number, sig: number): boolean {
  try {
    const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return mask !== undefined && (BigInt(`0x${mask}`) & (1n << BigInt(sig - 1))) !== 0n;
  } catch {
    return false;
  }
}

/**
 * How long `daemon restart` waits for a ping before it restarts the pid file's daemon anyway: a hung
 * worker is what a restart is for, and its supervisor takes the signal whatever the worker does.
 */
const RESTART_PING_MS = 2_000;

/** The pid the running daemon answers with, or null. */
async function answeringPid(answerWithinMs?: number): Promise<number | null> {
  try {
    return (await request({ op: 'ping' }, undefined, answerWithinMs)).pid;
  } catch (err) {
    // A worker going away mid-request (a restart) resets the connection: no one answering, for now.
    if (err instanceof DaemonNotRunning || ['ECONNRESET', 'EPIPE'].includes((err as NodeJS.ErrnoException).code ?? '')) return null;
    throw err;
  }
}

export const daemonCommand = defineCommand({
  command: 'daemon [action]',
  describe: 'Run, start, stop or restart the host\'s ondemand daemon (normally started by `mount`)',
  builder: (y) =>
    y
      .positional('action', {
        choices: ACTIONS, default: 'run' as const,
        describe: 'run: in the foreground (what systemd runs); start: in the background; stop: unmount everything and stop; ' +
          'status: whether it runs; restart: a new daemon takes over every mount, which keep serving',
      })
      .epilog(
        'Signals: SIGTERM or SIGINT to the daemon unmounts every image it serves, then it stops. SIGUSR2 is ' +
        '`daemon restart`: a new daemon takes over the kernel connections and mounts, readers wait and never see ' +
        'an error. A signal to its worker process (any, SIGTERM included) is a crash: the daemon starts a new ' +
        'worker, which serves the same mounts again; readers wait, they never see an error or zeros for it.',
      )
      .option('foreground', { type: 'boolean', default: true, describe: 'Stay attached (the daemon never forks itself; `mount` detaches it)' })
      .option('cache-dir', { type: 'string', describe: 'Cache directory (default cache.dir: $ONDEMAND_CACHE_DIR, the config file, /var/cache/ondemand)' }),
  handler: async (argv) => {
    // Started by `mount`: the configuration that CLI resolved (its flags included); else this command's own.
    const config = cliConfig({ 'cache.dir': { flag: '--cache-dir', value: argv.cacheDir } });
    const action = argv.action ?? 'run';
    if (action === 'run') {
      // The daemon's default level is info (a CLI's is warn): set here so its worker gets it too.
      if (config.settings['log.level'].source.kind === 'default') config.settings['log.level'] = { value: 'info', source: { kind: 'default' } };
      applyLogConfig(config);
      const supervisor = new Supervisor({ cacheDir: setting(config, 'cache.dir'), config });
      await supervisor.run();
      if (supervisor.failure) throw new MountError(supervisor.failure);
      return;
    }
    const pid = await answeringPid(action === 'restart' ? RESTART_PING_MS : undefined).catch((err: unknown) => {
      // A worker that does not answer (hung): its supervisor can still hand every mount to a new daemon.
      const held = action === 'restart' ? livePid() : null;
      if (held === null) throw err;
      process.stderr.write(`ondemand: warning: ${errorText(err)}: restarting daemon ${held} anyway\n`);
      return held;
    });
    if (action === 'status') {
      out(pid === null ? `no daemon running for ${runDir()}` : `daemon running for ${runDir()}: pid ${pid}`);
      if (pid === null) process.exitCode = 3;
      return;
    }
    if (action === 'start' || (action === 'restart' && pid === null)) {
      if (pid !== null) {
        out(`daemon already running: pid ${pid}`);
        return;
      }
      await ensureDaemon({ config, foreground: false });
      out(`daemon started: pid ${await answeringPid()}`);
      return;
    }
    if (pid === null) {
      out(`no daemon running for ${runDir()}`);
      return;
    }
    if (action === 'stop') {
      process.kill(pid, 'SIGTERM');
      if (!(await waitFor(() => livePid() === null, WAIT_MS))) throw new MountError(`the daemon (pid ${pid}) did not stop within ${WAIT_MS / 1000} s`);
      out(`daemon stopped (pid ${pid}); its mounts were unmounted`);
      return;
    }
    // SIGUSR2's default action ends a process: a daemon from before `daemon restart` would die with its mounts.
    if (!catchesSignal(pid, SIGUSR2)) throw new MountError(`the running daemon (pid ${pid}) predates \`daemon restart\`: use \`daemon stop\` and \`daemon start\` (its mounts are unmounted)`);
    process.kill(pid, 'SIGUSR2');
    let next: number | null = null;
    const ok = await waitFor(async () => {
      next = await answeringPid().catch(() => null);
      return next !== null && next !== pid;
    }, WAIT_MS);
    if (!ok) throw new MountError(`the daemon (pid ${pid}) did not hand over to a new one within ${WAIT_MS / 1000} s; see its log`);
    out(`daemon restarted: pid ${pid} -> ${next}; every mount kept serving`);
  },
});
