/**
 * Running the built CLI for the test/cli tests: like the mount harness's `cli`, plus a working
 * directory, stdin text and extra environment, and a sweep of mounts under the test's own dirs.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cliPath, type CliResult } from '../mount/harness.js';

export interface RunOptions {
  env: NodeJS.ProcessEnv;
  cwd?: string;
  stdin?: string;
}

export function runCli(args: string[], options: RunOptions): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [cliPath, ...args], { env: options.env, cwd: options.cwd ?? '/', timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 99) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(options.stdin ?? '');
  });
}

/** Mount points at or under any of `dirs`, deepest first. */
export function mountsUnder(dirs: string[]): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((l) => l.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((mp) => dirs.some((d) => mp === d || mp.startsWith(d + '/')))
    .reverse();
}

/** Lazily unmounts whatever a failed test left under `dirs`. */
export function sweepMounts(dirs: string[]): void {
  for (const mp of mountsUnder(dirs)) {
    try { execFileSync('umount', ['-l', mp], { stdio: 'ignore' }); } catch { /* gone */ }
  }
}

/** Waits until `pid` is gone (a killed child may take a moment). */
export async function waitGone(pid: number, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) throw new Error(`pid ${pid} still alive after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
