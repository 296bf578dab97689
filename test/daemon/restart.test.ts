/**
 * `ondemand daemon start|status|restart|stop` without systemd. A restart hands every mount to a new
 * daemon (its fds duplicated with pidfd_getfd, its records taken over): images being read through
 * fuse-tree, fuse-blobs and fanotify while it happens give every reader the right bytes, the mounts
 * stay, and the new daemon serves them. `stop` unmounts everything.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { mountpoints } from '../helpers/transport-mount.js';
import { cliBuilt, detectHere, leftovers, makeHarness, type Harness } from '../mount/harness.js';
import { imagePerMode, restartModes, sha } from '../mount/images.js';

const ready = needs('daemon restart', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']);

function shaOf(path: string): Promise<{ sha?: string; error?: string }> {
  return new Promise((resolve) => {
    execFile('sha256sum', [path], { timeout: 120_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) =>
      resolve(err ? { error: stderr.trim() || err.message } : { sha: stdout.split(' ')[0]! }));
  });
}

describe.skipIf(!ready)('daemon start, restart and stop', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  const images: { mode: string; args: string[]; tree: string }[] = [];

  beforeAll(async () => {
    h = makeHarness('restart');
    src = makeTempDir('restart-src');
    images.push(...(await imagePerMode(h, src.dir, restartModes(detectHere()?.features.fanotifyPreContent?.supported ?? false), 'restart', 48 << 20)));
  }, 300_000);
  afterAll(async () => {
    await h.cleanup();
    src.remove();
  });

  it('start and status', async () => {
    expect((await h.cli('daemon', 'status')).code).toBe(3);
    expect(await h.ok('daemon', 'start')).toMatch(/^daemon started: pid \d+/);
    expect(await h.ok('daemon', 'start')).toMatch(/^daemon already running: pid \d+/);
    expect(await h.ok('daemon', 'status')).toMatch(/daemon running for .*: pid \d+/);
  });

  it('restart while every mode is being read: right bytes everywhere, the mounts stay and are served by the new daemon', async () => {
    const mps = images.map((img) => h.mountpoint(`r-${img.mode}`));
    for (const [i, img] of images.entries()) await h.ok('mount', '--mode', img.mode, ...img.args, mps[i]!);
    const before = h.daemonPid();
    const reads = images.map((img, i) => shaOf(join(mps[i]!, 'data', 'bulk.bin')));
    const restarted = await h.ok('daemon', 'restart');
    const results = await Promise.all(reads);
    process.stderr.write(`${restarted.trim()}; reads: ${results.map((r) => r.error ?? 'right bytes').join(', ')}\n`);
    expect(restarted).toMatch(/every mount kept serving/);
    expect(h.daemonPid()).not.toBe(before);
    for (const [i, img] of images.entries()) {
      expect(results[i]!.error, img.mode).toBeUndefined();
      expect(results[i]!.sha, img.mode).toBe(sha(join(img.tree, 'data', 'bulk.bin')));
      // Read again, cold files, through the new daemon.
      const again = await shaOf(join(mps[i]!, 'data', 'nested', 'deeper', 'three-mib.bin'));
      expect(again.sha, img.mode).toBe(sha(join(img.tree, 'data', 'nested', 'deeper', 'three-mib.bin')));
    }
    const status = JSON.parse(await h.ok('status', '--json')) as { mounts: { mountpoint: string; mode: string }[] };
    expect(status.mounts.map((m) => m.mode).sort()).toEqual(images.map((img) => img.mode).sort());
    for (const mp of mps) expect(mountpoints()).toContain(mp);

    const stopped = await h.ok('daemon', 'stop');
    expect(stopped).toMatch(/daemon stopped .*mounts were unmounted/);
    expect(leftovers(h, mps)).toEqual({ mounts: [], loops: [] });
    expect(h.daemonPid()).toBeNull();
  }, 300_000);

  // The old daemon exits before its successor can take the run dir: a fanotify group holder that took
  // that moment for a dead daemon answered the waiting reads EIO.
  it('reads waiting for a stopped worker when the daemon restarts get their bytes from the new daemon', async () => {
    for (const entry of readdirSync(h.cacheDir)) rmSync(join(h.cacheDir, entry), { recursive: true }); // cold again
    await h.ok('daemon', 'start');
    const mps = images.map((img) => h.mountpoint(`w-${img.mode}`));
    for (const [i, img] of images.entries()) await h.ok('mount', '--mode', img.mode, ...img.args, mps[i]!);
    const { daemon } = JSON.parse(await h.ok('status', '--json')) as { daemon: { workerPid: number } };
    process.kill(daemon.workerPid, 'SIGSTOP');
    // Several files per mount: each waits on an event (a request) of its own.
    const files = ['medium.bin', 'one-mib-plus-one.bin', 'nested/deeper/three-mib.bin', 'bulk.bin'];
    const reads = images.map((img, i) => Promise.all(files.map((f) => shaOf(join(mps[i]!, 'data', f)))));
    await new Promise((r) => setTimeout(r, 500)); // every read is waiting for the worker now
    try {
      await h.ok('daemon', 'restart');
    } finally {
      try { process.kill(daemon.workerPid, 'SIGCONT'); } catch { /* killed by the hand-over */ }
    }
    const results = await Promise.all(reads);
    for (const [i, img] of images.entries()) {
      expect(results[i]!.map((r) => r.error ?? r.sha), img.mode).toEqual(files.map((f) => sha(join(img.tree, 'data', f))));
    }
    await h.ok('daemon', 'stop');
    expect(leftovers(h, mps)).toEqual({ mounts: [], loops: [] });
  }, 300_000);
});
