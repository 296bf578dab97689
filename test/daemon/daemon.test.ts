/**
 * The daemon without images: start on demand, status, worker restart by the supervisor, shutdown,
 * and the CLI's checks that fail before anything is started. Real processes, isolated run dirs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, needs } from '../helpers/env.js';
import { cliBuilt, makeHarness, type Harness } from '../mount/harness.js';

interface StatusJson { daemon: { pid: number; workerPid: number; workerRestarts: number } | null; mounts: unknown[] }

describe.skipIf(!needs('daemon lifecycle', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']))('daemon', () => {
  let h: Harness;
  beforeAll(() => { h = makeHarness('daemon'); });
  afterAll(async () => { await h.cleanup(); });

  it('reports "not running" without starting a daemon', async () => {
    const r = await h.cli('status', '--json');
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as StatusJson).daemon).toBeNull();
    expect(h.daemonPid()).toBeNull();
  });

  it('refuses bad mountpoints with one clear line, before starting a daemon', async () => {
    const missing = await h.cli('mount', '--image', 'oci:/nowhere', join(h.runDir, 'nope'));
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toMatch(/^ondemand: mountpoint .*nope does not exist$/);
    const file = join(h.mountpoint('f'), 'file');
    writeFileSync(file, 'x');
    const notDir = await h.cli('mount', '--image', 'oci:/nowhere', file);
    expect(notDir.code).toBe(1);
    expect(notDir.stderr.trim()).toMatch(/^ondemand: mountpoint .*file is not a directory$/);
    const busy = await h.cli('mount', '--image', 'oci:/nowhere', '/proc');
    expect(busy.code).toBe(1);
    expect(busy.stderr.trim()).toMatch(/^ondemand: mountpoint \/proc is busy/);
    expect(h.daemonPid()).toBeNull();
  });

  it('starts the daemon for a mount; an unknown image fails with one line and leaves nothing', async () => {
    const mp = h.mountpoint();
    const r = await h.cli('mount', '--image', `oci:${join(h.runDir, 'no-such-layout')}`, mp);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^ondemand: .*no-such-layout/);
    expect(h.daemonPid()).not.toBeNull();
    const s = JSON.parse(await h.ok('status', '--json')) as StatusJson;
    expect(s.mounts).toEqual([]);
  });

  it('restarts a killed worker; the control socket answers again', async () => {
    const before = JSON.parse(await h.ok('status', '--json')) as StatusJson;
    process.kill(before.daemon!.workerPid, 'SIGKILL');
    const t0 = Date.now();
    const after = JSON.parse(await h.ok('status', '--json')) as StatusJson;
    const ms = Date.now() - t0;
    expect(after.daemon!.pid).toBe(before.daemon!.pid);
    expect(after.daemon!.workerPid).not.toBe(before.daemon!.workerPid);
    expect(after.daemon!.workerRestarts).toBe(before.daemon!.workerRestarts + 1);
    process.stderr.write(`worker restart: status answered again after ${ms} ms\n`);
  });

  it('stops on SIGTERM and removes its socket and pid file', async () => {
    const pid = h.daemonPid()!;
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && h.daemonPid() !== null; i++) await new Promise((r) => setTimeout(r, 50));
    expect(h.daemonPid()).toBeNull();
    expect(existsSync(join(h.runDir, 'control.sock'))).toBe(false);
    expect(existsSync(join(h.runDir, 'daemon.pid'))).toBe(false);
  });
});
