/**
 * Running the real CLI and daemon in isolation: each harness has its own run dir (socket, records,
 * private FUSE mounts) and cache dir under /var/tmp, and `cleanup()` leaves nothing behind — it stops
 * the daemon, lazily unmounts anything under its dirs or its mountpoints, detaches loop devices
 * whose backing files live there, and ends a fanotify group holder a killed daemon left.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/env.js';

export const repoRoot = join(import.meta.dirname, '..', '..');
export const cliPath = join(repoRoot, 'bin', 'ondemand');
const mainJs = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

/** The CLI runs from dist/: true when it is built and not older than the daemon sources. */
export function cliBuilt(): boolean {
  if (!existsSync(mainJs)) return false;
  const built = statSync(join(repoRoot, 'dist', 'src', 'daemon', 'supervisor.js'), { throwIfNoEntry: false });
  return built !== undefined && built.mtimeMs >= statSync(join(repoRoot, 'src', 'daemon', 'supervisor.ts')).mtimeMs;
}

export interface CliResult { code: number; stdout: string; stderr: string }

export interface Harness {
  runDir: string;
  cacheDir: string;
  env: NodeJS.ProcessEnv;
  /** A fresh directory to mount on, removed by cleanup. */
  mountpoint(name?: string): string;
  cli(...args: string[]): Promise<CliResult>;
  /** The CLI, throwing with its stderr unless it exits 0. */
  ok(...args: string[]): Promise<string>;
  daemonPid(): number | null;
  cleanup(): Promise<void>;
}

function mountsUnder(prefixes: string[]): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((l) => l.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((mp) => prefixes.some((p) => mp === p || mp.startsWith(p + '/')));
}

/** Loop devices whose backing file path starts with one of `prefixes`. */
export function loopsUnder(prefixes: string[]): string[] {
  let out: string;
  try {
    out = execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'], { encoding: 'utf8' });
  } catch {
    return [];
  }
  return out.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 2 && prefixes.some((p) => f[1]!.startsWith(p))).map((f) => f[0]!);
}

export function leftovers(h: Harness, extra: string[] = []): { mounts: string[]; loops: string[] } {
  const prefixes = [h.runDir, h.cacheDir, ...extra];
  return { mounts: mountsUnder(prefixes), loops: loopsUnder(prefixes) };
}

export function makeHarness(name: string, extraEnv: NodeJS.ProcessEnv = {}): Harness {
  const run = makeTempDir(`${name}-run`);
  const cache = makeTempDir(`${name}-cache`);
  const mnts = makeTempDir(`${name}-mnt`);
  const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv, ONDEMAND_RUN_DIR: run.dir, ONDEMAND_CACHE_DIR: cache.dir };
  let n = 0;
  const cli = (...args: string[]): Promise<CliResult> =>
    new Promise((resolve) => {
      execFile(process.execPath, [cliPath, ...args], { env, timeout: 120_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 99) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  const daemonPid = (): number | null => {
    try {
      const pid = Number(readFileSync(join(run.dir, 'daemon.pid'), 'utf8').trim());
      process.kill(pid, 0);
      return pid;
    } catch {
      return null;
    }
  };
  const h: Harness = {
    runDir: run.dir,
    cacheDir: cache.dir,
    env,
    mountpoint(label = `m${n++}`) {
      const dir = join(mnts.dir, label);
      execFileSync('mkdir', ['-p', dir]);
      return dir;
    },
    cli,
    async ok(...args) {
      const r = await cli(...args);
      if (r.code !== 0) throw new Error(`ondemand ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
      return r.stdout;
    },
    daemonPid,
    async cleanup() {
      const pid = daemonPid();
      if (pid !== null) {
        process.kill(pid, 'SIGTERM');
        for (let i = 0; i < 200 && daemonPid() !== null; i++) await new Promise((r) => setTimeout(r, 50));
        const still = daemonPid();
        if (still !== null) process.kill(still, 'SIGKILL');
      }
      // Whatever survived (a killed daemon, a failed test): erofs first, then FUSE, then loops.
      for (const mp of mountsUnder([mnts.dir, run.dir]).reverse()) {
        try { execFileSync('umount', ['-l', mp], { stdio: 'ignore' }); } catch { /* gone */ }
      }
      for (const dev of loopsUnder([run.dir, cache.dir])) {
        try { execFileSync('losetup', ['-d', dev], { stdio: 'ignore' }); } catch { /* gone */ }
      }
      // A fanotify group holder a killed daemon left (its marks outlive the run dir otherwise).
      try {
        process.kill(Number(readFileSync(join(run.dir, 'fanotify-holder.pid'), 'utf8').trim()), 'SIGKILL');
      } catch { /* none */ }
      for (const d of [mnts, run, cache]) {
        try { d.remove(); } catch { /* a lazily unmounted dir may still be busy */ }
      }
    },
  };
  return h;
}

/** Paths of every file under `dir`, relative, sorted. */
export function listFiles(dir: string, base = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, base), { withFileTypes: true })) {
    const rel = join(base, e.name);
    if (e.isDirectory()) out.push(...listFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}
