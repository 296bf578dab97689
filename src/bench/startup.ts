/**
 * The start-up workload: a command run from an image's tree as a container runtime would, timed from
 * its start until it exits or prints the ready line. In new mount, PID and network namespaces
 * (util-linux `unshare`, which kills them all when it ends): an overlay over the tree (the tree stays
 * read-only; writes go to a scratch upper dir), the host's /dev bound and a /proc of its own, then
 * `chroot ROOT /bin/sh -c CMD`. Everything it mounted goes away with its namespace; its copies of
 * other image mounts are dropped at once (they would outlive their unmount on the host).
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BenchError } from '../util/errors.js';
import { DROP_IMAGE_MOUNTS_SH } from '../util/mount-namespace.js';
import { makeDirs } from '../util/make-dirs.js';

export interface StartupCommand {
  command: string;
  /** A line of the command's stdout or stderr matching this ends the run (null: the command's exit does). */
  ready: RegExp | null;
  timeoutMs: number;
}

export interface StartupResult {
  wallMs: number;
  ended: 'exit' | 'ready';
  exitCode: number | null;
}

const SETUP = String.raw`set -e
${DROP_IMAGE_MOUNTS_SH}
mount -t overlay overlay -o "lowerdir=$BENCH_LOWER,upperdir=$BENCH_UPPER,workdir=$BENCH_WORK" "$BENCH_ROOT"
mkdir -p "$BENCH_ROOT/dev" "$BENCH_ROOT/proc"
mount --rbind /dev "$BENCH_ROOT/dev"
mount -t proc proc "$BENCH_ROOT/proc"
drop_image_mounts "$BENCH_ROOT"
exec chroot "$BENCH_ROOT" /bin/sh -c "$BENCH_CMD"
`;

/**
 * Ends a run's namespaces: SIGKILL to the first process of its PID namespace (unshare's child), whose
 * death kills every other process in it before unshare's wait returns, so the namespace's mounts are
 * gone once unshare has exited. Falls back to killing unshare (--kill-child does the rest).
 */
function endNamespaces(unsharePid: number | undefined): void {
  if (unsharePid === undefined) return;
  try {
    const init = Number(readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim().split(' ')[0]);
    if (init > 0) {
      process.kill(init, 'SIGKILL');
      return;
    }
  } catch { /* no children file, or the process is gone: kill unshare itself */ }
  try {
    process.kill(unsharePid, 'SIGKILL');
  } catch { /* already gone */ }
}

/** Keeps the last `max` characters of what a command printed, for error messages. */
function tail(text: string, max = 2000): string {
  return text.length > max ? `...${text.slice(-max)}` : text;
}

/**
 * Runs `cmd` in a chroot of `lower` (read-only, under an overlay made in `scratch`, which is emptied
 * first and removed after). Fails when the command exits non-zero, or exits before its ready line.
 */
export async function runStartup(lower: string, scratch: string, cmd: StartupCommand): Promise<StartupResult> {
  rmSync(scratch, { recursive: true, force: true });
  const dirs = { upper: join(scratch, 'upper'), work: join(scratch, 'work'), root: join(scratch, 'root') };
  for (const d of Object.values(dirs)) makeDirs(d);
  const env = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    LANG: 'C.UTF-8',
    BENCH_LOWER: lower, BENCH_UPPER: dirs.upper, BENCH_WORK: dirs.work, BENCH_ROOT: dirs.root, BENCH_CMD: cmd.command,
  };
  const t0 = performance.now();
  const child = spawn('unshare', ['--mount', '--pid', '--net', '--fork', '--kill-child', '--propagation', 'private', '/bin/sh', '-c', SETUP], {
    env, stdio: ['ignore', 'pipe', 'pipe'], cwd: '/',
  });
  let output = '';
  let readyAt: number | null = null;
  try {
    return await new Promise<StartupResult>((resolve, reject) => {
      let pending = '';
      const onData = (chunk: Buffer): void => {
        const text = chunk.toString('utf8');
        output += text;
        if (cmd.ready === null || readyAt !== null) return;
        pending += text;
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        if (lines.some((l) => cmd.ready!.test(l)) || cmd.ready.test(pending)) {
          readyAt = performance.now();
          endNamespaces(child.pid);
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      const timer = setTimeout(() => {
        endNamespaces(child.pid);
        reject(new BenchError(`start-up command did not ${cmd.ready ? 'print its ready line' : 'exit'} within ${cmd.timeoutMs / 1000} s: ${tail(output)}`, { command: cmd.command }));
      }, cmd.timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new BenchError(`cannot run unshare for the start-up command: ${err.message}`, { command: cmd.command }, { cause: err }));
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        if (readyAt !== null) {
          resolve({ wallMs: readyAt - t0, ended: 'ready', exitCode: null });
          return;
        }
        const wallMs = performance.now() - t0;
        if (code !== 0) {
          reject(new BenchError(`start-up command exited ${code ?? 'on a signal'}: ${tail(output).trim() || 'no output'}`, { command: cmd.command }));
        } else if (cmd.ready !== null) {
          reject(new BenchError(`start-up command exited without printing a line matching ${String(cmd.ready)}: ${tail(output).trim() || 'no output'}`, { command: cmd.command }));
        } else {
          resolve({ wallMs, ended: 'exit', exitCode: 0 });
        }
      });
    });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
