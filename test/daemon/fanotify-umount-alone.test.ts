/**
 * `ondemand umount` of a fanotify mount whose daemon was killed (no daemon runs): its marks leave the
 * group the dead daemon's holder keeps, so the cache files are read without events again and the
 * holder ends. Before, the holder kept them and denied every read (EIO): `cache verify` without a
 * daemon failed on the cache's own files. A mount that is still in use is detached instead: its marks
 * stay (its erofs may still read the files), the holder with them, and `umount` says so.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { alive, cliBuilt, detectHere, fanotifyHolder, leftovers, makeHarness, waitUntil, type Harness } from '../mount/harness.js';
import { buildImage, compareTrees, makeTree, type TestImage } from '../mount/images.js';

const ready = needs('daemon-less umount of fanotify mounts', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'],
  [detectHere()?.features.fanotifyPreContent?.supported === true, 'fanotify pre-content events (kernel 6.14+)']);

describe.skipIf(!ready)('umount of a fanotify mount after its daemon was killed', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  let image: TestImage;
  let tree: string;

  beforeAll(async () => {
    h = makeHarness('fan-alone');
    src = makeTempDir('fan-alone-src');
    tree = join(src.dir, 'tree');
    makeTree(tree, { seed: 'alone', bulkBytes: 4 * 1024 * 1024 });
    image = await buildImage(h, tree, join(src.dir, 'layout'));
  });
  afterAll(async () => {
    await h.cleanup();
    src.remove();
  });

  /** Mounts the image with fanotify, reads it, then SIGKILLs the supervisor (its worker goes with it). */
  async function mountThenKillDaemon(mp: string): Promise<void> {
    await h.ok('mount', '--mode', 'fanotify', ...image.args, mp);
    expect(compareTrees(tree, mp)).toEqual([]);
    const sup = h.daemonPid()!;
    process.kill(sup, 'SIGKILL');
    expect(await waitUntil(() => !alive(sup) && h.daemonPid() === null, 10_000)).toBe(true);
    expect(fanotifyHolder(h.runDir)).not.toBeNull();
  }

  it('a mount not in use: its marks go, the holder ends, the cache files read without a daemon', async () => {
    const mp = h.mountpoint('idle');
    await mountThenKillDaemon(mp);
    const r = await h.cli('umount', mp);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/still in use/);
    expect(await waitUntil(() => fanotifyHolder(h.runDir) === null, 5_000)).toBe(true);
    expect(await h.ok('status')).not.toContain('fanotify group holder');
    const verify = await h.cli('cache', 'verify');
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/[1-9]\d* frames checked, 0 bad/);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });

  it('a mount in use: detached with its marks kept, the holder stays and is adopted by the next daemon', async () => {
    const mp = h.mountpoint('busy');
    await mountThenKillDaemon(mp);
    const fd = openSync(join(mp, 'data', 'bulk.bin'), 'r');
    const user = spawn('sleep', ['600'], { stdio: [fd, 'ignore', 'ignore'] });
    closeSync(fd);
    try {
      const r = await h.cli('umount', mp);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/still in use, so detached: the fanotify group holder \(pid \d+\) keeps its cache files marked/);
      await new Promise((res) => setTimeout(res, 500));
      const holder = fanotifyHolder(h.runDir);
      expect(holder).not.toBeNull();
      expect(await h.ok('status')).toContain(`fanotify group holder pid ${holder}: keeps the marks`);
    } finally {
      user.kill('SIGKILL');
    }
    // The next daemon adopts the group with those marks, and serves the image again.
    const again = h.mountpoint('after');
    await h.ok('mount', '--mode', 'fanotify', ...image.args, again);
    expect(compareTrees(tree, again)).toEqual([]);
    await h.ok('umount', again);
    expect(leftovers(h, [mp, again])).toEqual({ mounts: [], loops: [] });
  });
});
