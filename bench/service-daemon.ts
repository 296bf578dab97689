/**
 * What the registry benches share: their set-up (a local Debian docker-registry, a work dir, a CLI
 * harness to build and push with), a daemon started the way a host service runs (before the clock,
 * its own run and cache dirs, the cache empty), and per-file page cache eviction.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { request } from '../src/daemon/client.js';
import { controlSocketPath } from '../src/daemon/paths.js';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.js';
import { cliPath, makeHarness, type Harness } from '../test/mount/harness.js';
import { deferFreePageReporting } from './free-page-reporting.js';

/**
 * Runs `cleanUp` when the bench is interrupted (Ctrl-C, kill), then exits as the signal asks: a bench
 * stopped halfway (e.g. while FTB_HOLD holds its mounts) otherwise left its mounts, daemons and
 * registry behind. Returns the function that takes the handlers off (once the bench cleaned up itself).
 */
export function cleanUpOnSignal(cleanUp: () => Promise<void>): () => void {
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`${signal}: cleaning up\n`);
    void cleanUp().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Every regular file under `dir`. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Drops the page cache of every file under the given directories (per file: see bench/fuse-read.ts). */
export function evictUnder(...dirs: string[]): void {
  const files = dirs.flatMap((d) => filesUnder(d));
  for (let i = 0; i < files.length; i += 500) {
    execFileSync('python3', ['-c', 'import os,sys\nfor p in sys.argv[1:]:\n  fd=os.open(p,os.O_RDONLY); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED); os.close(fd)', ...files.slice(i, i + 500)]);
  }
}

/** Starts `ondemand daemon` for the harness and waits until it answers; returns its control socket. */
export async function startServiceDaemon(h: Harness): Promise<string> {
  const daemon = spawn(process.execPath, [cliPath, 'daemon'], { env: h.env, stdio: 'ignore', detached: true });
  daemon.unref();
  const socket = controlSocketPath(h.runDir);
  for (let tries = 0; ; tries++) {
    try {
      await request({ op: 'ping' }, socket);
      return socket;
    } catch (err) {
      if (tries > 300) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export interface RegistryBench {
  /** A work dir under /var/tmp ($ONDEMAND_TEST_TMP), removed at the end. */
  tmp: string;
  registry: TestRegistry;
  /** A CLI harness for building and pushing images. */
  setup: Harness;
}

/**
 * Runs `body` as the bench `name` with its registry, work dir and harness, tears them down whatever
 * happens, and exits non-zero with the error on failure. Free page reporting is deferred meanwhile.
 */
export function runRegistryBench(name: string, body: (b: RegistryBench) => Promise<void>): void {
  const main = async (): Promise<void> => {
    const restoreReporting = deferFreePageReporting(false);
    const tmp = mkdtempSync(join(process.env.ONDEMAND_TEST_TMP ?? '/var/tmp', `ondemand-bench-${name}-`));
    const registry = await startRegistry({ auth: 'none' });
    const setup = makeHarness(`bench-${name}-setup`);
    let cleaning: Promise<void> | undefined;
    const cleanUp = (): Promise<void> => (cleaning ??= (async () => {
      await setup.cleanup();
      await registry.stop();
      rmSync(tmp, { recursive: true, force: true });
      restoreReporting();
    })());
    const stopWatching = cleanUpOnSignal(cleanUp);
    try {
      await body({ tmp, registry, setup });
    } finally {
      stopWatching();
      await cleanUp();
    }
  };
  main().catch((err: unknown) => {
    process.stderr.write(`${name}: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  });
}
