/**
 * Mountpoints that must be refused before anything is made: the empty string, a directory that is not
 * empty, and anything inside or above the daemon's run dir or cache dir. The CLI refuses before it
 * contacts (or starts) a daemon; the worker refuses the same requests sent to the socket directly.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../src/daemon/client.js';
import { MountError } from '../../src/util/errors.js';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, makeHarness, type Harness } from '../mount/harness.js';
import { buildImage, makeTree, type TestImage } from '../mount/images.js';
import { mountsUnder, runCli, sweepMounts } from './helpers.js';

const ready = needs('mountpoint refusals', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']);

describe.skipIf(!ready)('mountpoints refused before anything is made', () => {
  let h: Harness;
  let tmp: { dir: string; remove: () => void };
  let image: TestImage;
  /** Directories to watch for mounts that should never appear. */
  let watched: string[];

  beforeAll(async () => {
    h = makeHarness('cli-mp');
    tmp = makeTempDir('cli-mp');
    makeTree(join(tmp.dir, 'tree'), { seed: 'm', bulkBytes: 64 * 1024 });
    image = await buildImage(h, join(tmp.dir, 'tree'), join(tmp.dir, 'layout'));
    mkdirSync(join(tmp.dir, 'cwd'));
    watched = [h.runDir, h.cacheDir, tmp.dir];
  });
  afterAll(async () => {
    await h.cleanup();
    sweepMounts(watched);
    tmp.remove();
  });

  async function refusedByCli(mountpoint: string, pattern: RegExp, env = h.env): Promise<void> {
    const r = await runCli(['mount', ...image.args, mountpoint], { env, cwd: join(tmp.dir, 'cwd') });
    expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    expect(r.stderr.trim()).toMatch(pattern);
    expect(r.code).toBe(1);
  }

  it('the CLI refuses each with one line, without starting a daemon', async () => {
    await refusedByCli('', /^ondemand: the mountpoint is the empty string/);
    const full = h.mountpoint('full');
    writeFileSync(join(full, 'something'), 'x');
    await refusedByCli(full, /^ondemand: mountpoint .*full is not empty/);
    const inRun = join(h.runDir, 'inside');
    mkdirSync(inRun);
    await refusedByCli(inRun, /^ondemand: mountpoint .*inside is inside the daemon's run dir/);
    await refusedByCli(h.cacheDir, /^ondemand: mountpoint .* is the cache dir/);
    // Above the run dir: an empty directory whose run dir the daemon has not made yet.
    const above = join(tmp.dir, 'above');
    mkdirSync(above);
    await refusedByCli(above, /^ondemand: mountpoint .*above is above the daemon's run dir/, { ...h.env, ONDEMAND_RUN_DIR: join(above, 'run') });
    expect(h.daemonPid()).toBeNull();
    expect(mountsUnder(watched)).toEqual([]);
  });

  it('the worker refuses them too, when asked over the socket directly', async () => {
    const mp = h.mountpoint('ok');
    // Started from an empty directory: a worker that took '' for its cwd would mount there, not here.
    const started = await runCli(['mount', ...image.args, mp], { env: h.env, cwd: join(tmp.dir, 'cwd') });
    expect(started.code, started.stderr).toBe(0);
    const sock = join(h.runDir, 'control.sock');
    const before = mountsUnder(watched);
    const inRun = join(h.runDir, 'inside-too');
    mkdirSync(inRun);
    const cases: [string, RegExp][] = [
      ['', /the mountpoint is the empty string/],
      [join(tmp.dir, 'tree'), /is not empty/],
      [inRun, /inside the daemon's run dir/],
      [join(h.cacheDir, 'tmp'), /inside the cache dir/],
    ];
    for (const [mountpoint, pattern] of cases) {
      const err: unknown = await request({ op: 'mount', image: image.ref, mountpoint, mode: 'auto', prefetch: false, insecure: false }, sock)
        .then(() => null, (e: unknown) => e);
      expect(err, mountpoint).toBeInstanceOf(MountError);
      expect((err as MountError).message).toMatch(pattern);
    }
    expect(mountsUnder(watched)).toEqual(before);
    await h.ok('umount', mp);
  });
});
