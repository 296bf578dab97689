/**
 * The daemon is one, and a signal to its worker is a crash: two daemons started at once for one run
 * dir leave exactly one, untouched; SIGTERM to the worker restarts it without unmounting anything.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, cliPath, makeHarness, type Harness } from '../mount/harness.js';
import { buildImage, compareTrees, makeTree, type TestImage } from '../mount/images.js';

interface StatusJson { daemon: { pid: number; workerPid: number; workerRestarts: number } | null; mounts: { mountpoint: string }[] }

function runDaemon(h: Harness): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, 'daemon'], { env: h.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

async function waitFor(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.skipIf(!needs('daemon lifecycle', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']))('daemon lifecycle', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  let image: TestImage;
  beforeAll(async () => {
    h = makeHarness('lifecycle');
    src = makeTempDir('lifecycle-src');
    makeTree(join(src.dir, 'tree'), { seed: 'l' });
    image = await buildImage(h, join(src.dir, 'tree'), join(src.dir, 'layout'));
  });
  afterAll(async () => {
    await h.cleanup();
    src.remove();
  });

  it('of two daemons started at once for one run dir, one runs and the other leaves its files alone', async () => {
    const first = runDaemon(h);
    const second = runDaemon(h);
    const loser = await Promise.race([first, second]);
    expect(loser.code).toBe(1);
    expect(loser.stderr).toMatch(/a daemon is already running for/);
    await waitFor('the control socket', () => existsSync(join(h.runDir, 'control.sock')));
    const pid = h.daemonPid();
    expect(pid).not.toBeNull();
    const s = JSON.parse(await h.ok('status', '--json')) as StatusJson;
    expect(s.daemon!.pid).toBe(pid);
    expect(existsSync(join(h.runDir, 'mounts.json'))).toBe(true);
    expect(Number(readFileSync(join(h.runDir, 'daemon.pid'), 'utf8'))).toBe(pid);
  });

  it('restarts a worker that got SIGTERM, and its mounts keep serving', async () => {
    const mp = h.mountpoint();
    await h.ok('mount', ...image.args, mp);
    const before = JSON.parse(await h.ok('status', '--json')) as StatusJson;
    process.kill(before.daemon!.workerPid, 'SIGTERM');
    await waitFor('a new worker', () => {
      try {
        process.kill(before.daemon!.workerPid, 0);
        return false;
      } catch {
        return true;
      }
    });
    const after = JSON.parse(await h.ok('status', '--json')) as StatusJson;
    expect(after.daemon!.pid).toBe(before.daemon!.pid);
    expect(after.daemon!.workerPid).not.toBe(before.daemon!.workerPid);
    expect(after.mounts.map((m) => m.mountpoint)).toEqual([mp]);
    expect(compareTrees(join(src.dir, 'tree'), mp)).toEqual([]);
    await h.ok('umount', mp);
  });

  it('a restarted worker serves the manifest a mount was made from, not what its tag names now', async () => {
    const layout = join(src.dir, 'moving');
    const first = await buildImage(h, join(src.dir, 'tree'), layout, 'moving');
    const mp = h.mountpoint();
    await h.ok('mount', ...first.args, mp);
    // The tag now names another image (same paths, other bytes) before the worker dies.
    makeTree(join(src.dir, 'other'), { seed: 'o' });
    await buildImage(h, join(src.dir, 'other'), layout, 'moving');
    const before = JSON.parse(await h.ok('status', '--json')) as StatusJson;
    process.kill(before.daemon!.workerPid, 'SIGKILL');
    // Cold reads after the restart: every byte must be the mounted image's.
    expect(compareTrees(join(src.dir, 'tree'), mp)).toEqual([]);
    const after = JSON.parse(await h.ok('status', '--json')) as StatusJson;
    expect(after.daemon!.workerPid).not.toBe(before.daemon!.workerPid);
    await h.ok('umount', mp);
  });

  it('the cache stays locked while a killed worker is replaced (no `cache gc` in the gap; gc then asks the new worker)', async () => {
    const mp = h.mountpoint();
    await h.ok('mount', ...image.args, mp);
    const before = JSON.parse(await h.ok('status', '--json')) as StatusJson;
    const lockFile = join(h.cacheDir, 'lock');
    expect(Number(readFileSync(lockFile, 'utf8'))).toBe(before.daemon!.pid);
    process.kill(before.daemon!.workerPid, 'SIGKILL');
    // Probe the flock as often as we can until the new worker answers: it must never be free.
    let probes = 0;
    let freed = 0;
    for (;;) {
      probes += 1;
      if (spawnSync('flock', ['--nonblock', lockFile, 'true']).status === 0) freed += 1;
      const now = await h.cli('status', '--json');
      if (now.code === 0 && (JSON.parse(now.stdout) as StatusJson).daemon?.workerPid !== before.daemon!.workerPid) break;
      if (probes > 400) throw new Error('no new worker');
    }
    process.stderr.write(`cache lock probed ${probes} times while the worker was replaced: free ${freed} times\n`);
    expect(freed).toBe(0);
    // The daemon owns the cache: gc goes through it, and the mounted image's blobs are pinned.
    const present = async (): Promise<number> => (JSON.parse(await h.ok('status', '--json')) as { mounts: { bytesPresent: number }[] }).mounts[0]!.bytesPresent;
    const presentBefore = await present();
    const gc = await h.cli('cache', 'gc', '--max-size', '0');
    expect(gc.code).toBe(0);
    expect(gc.stdout).toMatch(/^evicted \d+ blobs/);
    expect(await present()).toBe(presentBefore);
    expect(compareTrees(join(src.dir, 'tree'), mp)).toEqual([]);
    await h.ok('umount', mp);
  });

  it('SIGTERM to the daemon unmounts everything and stops', async () => {
    const mp = h.mountpoint();
    await h.ok('mount', ...image.args, mp);
    const pid = h.daemonPid()!;
    process.kill(pid, 'SIGTERM');
    await waitFor('the daemon to stop', () => h.daemonPid() === null);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(` ${mp} `);
  });
});
