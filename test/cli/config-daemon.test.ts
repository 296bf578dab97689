/**
 * `mount --config FILE` starts the daemon with that configuration: its cache dir, its log file and
 * the prefetch default come from the file (given as a relative path: the daemon runs in /), and a
 * later command without the file talks to that daemon.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, makeHarness, type Harness } from '../mount/harness.js';
import { buildImage, makeTree } from '../mount/images.js';
import { runCli } from './helpers.js';

describe.skipIf(!needs('daemon configuration', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']))('the daemon gets the configuration of the mount that starts it', () => {
  let h: Harness;
  let tmp: { dir: string; remove: () => void };
  let ref: string;

  beforeAll(async () => {
    h = makeHarness('cli-config-daemon');
    tmp = makeTempDir('cli-config-daemon');
    makeTree(join(tmp.dir, 'tree'), { seed: 'cfg', bulkBytes: 256 * 1024 });
    ref = (await buildImage(h, join(tmp.dir, 'tree'), join(tmp.dir, 'layout'))).ref;
  });
  afterAll(async () => {
    await h.cleanup();
    tmp.remove();
  });

  it('cache dir, log file and prefetch from --config', async () => {
    const cacheDir = join(tmp.dir, 'configured-cache');
    const logFile = join(tmp.dir, 'logs', 'ondemand.log');
    writeFileSync(join(tmp.dir, 'config.toml'), `[cache]\ndir = "${cacheDir}"\n[prefetch]\nenabled = true\n[log]\nfile = "${logFile}"\n`);
    // The harness's $ONDEMAND_CACHE_DIR would win over the file.
    const env = { ...h.env };
    delete env.ONDEMAND_CACHE_DIR;
    const mp = h.mountpoint('m');
    const r = await runCli(['mount', '--config', 'config.toml', '--image', ref, mp], { env, cwd: tmp.dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);

    const status = JSON.parse((await runCli(['status', '--json'], { env })).stdout) as {
      daemon: { cacheDir: string }; cache: { dir: string }; mounts: { mountpoint: string; prefetch?: string }[];
    };
    expect(status.daemon.cacheDir).toBe(cacheDir);
    expect(status.cache.dir).toBe(cacheDir);
    expect(existsSync(join(cacheDir, 'blobs'))).toBe(true);
    expect(status.mounts.find((m) => m.mountpoint === mp)?.prefetch).toBeDefined();
    // The supervisor's and the worker's lines go to the configured file (info: the daemon's default level).
    const lines = readFileSync(logFile, 'utf8');
    expect(lines).toContain('kernel features probed');
    expect(lines).toContain('worker listening');
    expect(readFileSync(join(h.runDir, 'daemon.log'), 'utf8')).not.toContain('worker listening');

    // The same mount again with a flag that contradicts the running daemon's cache dir is refused.
    const other = await runCli(['mount', '--config', 'config.toml', '--cache-dir', join(tmp.dir, 'other-cache'), '--image', ref, h.mountpoint('m2')], { env, cwd: tmp.dir });
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/the running daemon \(pid \d+\) uses cache .*configured-cache, not .*other-cache/);

    await h.ok('umount', mp);
  });
});
