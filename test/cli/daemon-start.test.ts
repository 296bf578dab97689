/**
 * A daemon that cannot start: the CLI's own one-line error says why (the daemon's fatal line), not
 * just "see daemon.log".
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, makeHarness, type Harness } from '../mount/harness.js';
import { runCli, waitGone } from './helpers.js';

const ready = needs('daemon start failures', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']);

describe.skipIf(!ready)('a daemon that cannot start says why', () => {
  let h: Harness;
  let tmp: { dir: string; remove: () => void };
  let mp: string;
  let aFile: string;

  beforeAll(() => {
    h = makeHarness('cli-start');
    tmp = makeTempDir('cli-start');
    mp = h.mountpoint('m');
    aFile = join(tmp.dir, 'a-file');
    writeFileSync(aFile, 'not a directory\n');
  });
  afterAll(async () => {
    await h.cleanup();
    tmp.remove();
  });

  function oneLine(r: { code: number; stderr: string }): string {
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    return r.stderr.trim();
  }

  it('a cache dir that cannot be created', async () => {
    const r = await runCli(['mount', '--image', 'oci:/nowhere', mp], { env: { ...h.env, ONDEMAND_CACHE_DIR: join(aFile, 'cache') } });
    const line = oneLine(r);
    expect(line).toMatch(/^ondemand: the daemon failed to start: cannot create cache directory .*a-file\/cache: ENOTDIR/);
    expect(h.daemonPid()).toBeNull();
  });

  it('a run dir that cannot be created', async () => {
    const r = await runCli(['mount', '--image', 'oci:/nowhere', mp], { env: { ...h.env, ONDEMAND_RUN_DIR: join(aFile, 'run') } });
    expect(oneLine(r)).toMatch(/^ondemand: cannot use the run dir .*a-file\/run: ENOTDIR/);
  });

  it.skipIf(!haveCommand('chattr'))('a run dir that is not writable', async () => {
    const run = join(tmp.dir, 'immutable-run');
    mkdirSync(run);
    execFileSync('chattr', ['+i', run]);
    try {
      const r = await runCli(['mount', '--image', 'oci:/nowhere', mp], { env: { ...h.env, ONDEMAND_RUN_DIR: run } });
      expect(oneLine(r)).toMatch(/^ondemand: cannot use the run dir .*immutable-run: EPERM/);
    } finally {
      execFileSync('chattr', ['-i', run]);
    }
  });

  it.skipIf(!haveCommand('flock'))('another process holding the run dir (its daemon.lock)', async () => {
    const run = join(tmp.dir, 'held-run');
    mkdirSync(run);
    const lock = join(run, 'daemon.lock');
    // Its own process group: flock's child (sleep) holds the lock too, and goes with the group.
    const holder = spawn('flock', ['--exclusive', lock, 'sleep', '600'], { stdio: 'ignore', detached: true });
    try {
      // flock -n fails while the holder has it.
      for (let i = 0; i < 250 && spawnSync('flock', ['--nonblock', lock, 'true']).status === 0; i++) await new Promise((r) => setTimeout(r, 20));
      const r = await runCli(['mount', '--image', 'oci:/nowhere', mp], { env: { ...h.env, ONDEMAND_RUN_DIR: run } });
      expect(oneLine(r)).toMatch(/^ondemand: the daemon failed to start: a daemon is already running for .*held-run/);
    } finally {
      process.kill(-holder.pid!, 'SIGKILL');
      await waitGone(holder.pid!);
    }
  });
});
