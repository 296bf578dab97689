/**
 * Running the real CLI and daemon in isolation: each harness has its own run dir (socket, records,
 * private FUSE mounts) and cache dir under /var/tmp, and `cleanup()` leaves nothing behind — it stops
 * the daemon, lazily unmounts anything under its dirs or its mountpoints, detaches loop devices
 * whose backing files live there, and ends a fanotify group holder a killed daemon left.
 */
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { makeTempDir } from '../helpers/env.js';

// From the build (dist/test/mount, as benchmarks import it) the repository is one level further up.
const twoUp = join(import.meta.dirname, '..', '..');
export const repoRoot = basename(twoUp) === 'dist' ? dirname(twoUp) : twoUp;
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

/** A loop device and its backing file: path as the kernel shows it, and identity (device, inode). */
export interface LoopDevice {
  name: string;
  file: string;
  /** "MAJ:MIN INODE" of the backing file: still the same once its path no longer says where it is. */
  identity: string;
}

export function loopDevices(): LoopDevice[] {
  let out: string;
  try {
    out = execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-MAJ:MIN,BACK-INO,BACK-FILE'], { encoding: 'utf8' });
  } catch {
    return [];
  }
  return out.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 4)
    .map(([name, dev, ino, ...file]) => ({ name: name!, identity: `${dev} ${ino}`, file: file.join(' ') }));
}

/** Loop devices whose backing file path starts with one of `prefixes`. */
export function loopsUnder(prefixes: string[]): string[] {
  return loopDevices().filter((l) => prefixes.some((p) => l.file.startsWith(p))).map((l) => l.name);
}

export function leftovers(h: Harness, extra: string[] = []): { mounts: string[]; loops: string[] } {
  const prefixes = [h.runDir, h.cacheDir, ...extra];
  return { mounts: mountsUnder(prefixes), loops: loopsUnder(prefixes) };
}

/** Whether `pid` is a live fanotify group holder (src/daemon/fanotify-holder.ts). */
export function isFanotifyHolder(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('fanotify-holder-main.js');
  } catch {
    return false;
  }
}

/** The live fanotify group holder recorded in `runDir`, or null. */
export function fanotifyHolder(runDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(runDir, 'fanotify-holder.pid'), 'utf8').trim());
    return isFanotifyHolder(pid) ? pid : null;
  } catch {
    return null;
  }
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
      return alive(pid) ? pid : null;
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
      const holder = fanotifyHolder(run.dir);
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
      // A fanotify group holder a daemon left (it was killed, or its mounts were detached busy).
      for (const p of [holder, fanotifyHolder(run.dir)]) {
        if (p !== null && isFanotifyHolder(p)) process.kill(p, 'SIGKILL');
      }
      // $ONDEMAND_TEST_KEEP_LOGS=DIR keeps the daemon's log there (for a failure to be read afterwards).
      const keep = process.env.ONDEMAND_TEST_KEEP_LOGS;
      if (keep) {
        try { copyFileSync(join(run.dir, 'daemon.log'), join(keep, `${basename(run.dir)}-daemon.log`)); } catch { /* no log */ }
      }
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

/** Source and super options of the erofs mount at `mp` (from mountinfo), if there is one. */
export function erofsMount(mp: string): { source: string; options: string } | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [head, tail] = line.split(' - ');
    if (head?.split(' ')[4] !== mp || !tail) continue;
    const [fstype, source, options] = tail.split(' ');
    if (fstype === 'erofs' && source && options) return { source, options };
  }
  return undefined;
}

/** Whether `pid` runs (a zombie, exited but not reaped yet, does not). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Polls `check` every 25 ms for up to `ms`; its last answer. */
export async function waitUntil(check: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}

/** What read-check.mjs says of one read; `hung`: no answer by the deadline. */
export type ReadOutcome = 'right' | 'error' | 'wrong' | 'zero-filled' | 'hung';
/** One read for read-check.mjs: `ranges` [[offset, length], ...] read with pread, null for the whole file. */
export interface ReadRequest { id: number; path: string; source: string; ranges: [number, number][] | null }
export interface ReadResult { id: number; outcome: ReadOutcome; code?: string; detail?: string }

const READ_CHECK = join(repoRoot, 'test', 'helpers', 'read-check.mjs');

/**
 * Runs `reads` in a child process (test/helpers/read-check.mjs: every byte compared with its source),
 * so a hung read cannot hang the test: reads not answered within `deadlineMs` are `hung`.
 */
export function readCheck(reads: ReadRequest[], deadlineMs: number): Promise<ReadResult[]> {
  return new Promise((resolve) => {
    execFile(process.execPath, [READ_CHECK, JSON.stringify(reads)], { timeout: deadlineMs, killSignal: 'SIGKILL', env: { ...process.env, UV_THREADPOOL_SIZE: '16' }, maxBuffer: 16 << 20 },
      (_err, stdout) => {
        const answered = new Map<number, ReadResult>();
        for (const line of stdout.split('\n').filter(Boolean)) {
          const r = JSON.parse(line) as ReadResult;
          answered.set(r.id, r);
        }
        resolve(reads.map((r) => answered.get(r.id) ?? { id: r.id, outcome: 'hung', detail: `no answer within ${deadlineMs} ms` }));
      });
  });
}

export interface DetectReport { features: Record<string, { supported: boolean; reason: string }>; mode: string | null; reason: string }

/**
 * `ondemand detect --json` for a cache dir on the tests' disk (where harnesses put theirs), or null
 * when it cannot run (not root, no current build).
 */
export function detectHere(): DetectReport | null {
  if (process.getuid?.() !== 0 || !cliBuilt()) return null;
  try {
    const out = execFileSync(process.execPath, [cliPath, 'detect', '--json', '--cache-dir', process.env.ONDEMAND_TEST_TMP ?? '/var/tmp'], { encoding: 'utf8' });
    return JSON.parse(out) as DetectReport;
  } catch {
    return null;
  }
}
