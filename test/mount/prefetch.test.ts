/**
 * `--prefetch`: every blob is fetched in the background after mounting; when complete, the blobs'
 * read-only loop devices switch to the complete cache files, so reads no longer involve the daemon
 * (status `blobsDirect`), and the next mount of the image reads its complete blobs the same way from
 * the start (loops on the cache files, or FUSE passthrough where erofs takes FUSE files).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { alive, cliBuilt, fanotifyHolder, leftovers, loopsUnder, makeHarness, waitUntil, type Harness } from './harness.js';
import { buildImage, compareTrees, makeTree, mountStatus, type TestImage } from './images.js';

const ready = needs('prefetch', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']);

describe.skipIf(!ready)('mount --prefetch', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  let image: TestImage;

  /** Mounts `mode` with --prefetch and waits (up to 2 min) until the prefetch is no longer running; its status then. */
  async function mountPrefetched(on: Harness, mode: string, mp: string): Promise<Awaited<ReturnType<typeof mountStatus>>> {
    await on.ok('mount', '--mode', mode, '--prefetch', ...image.args, mp);
    let s = await mountStatus(on, mp);
    for (let i = 0; i < 240 && s.prefetch === 'running'; i++) {
      await new Promise((r) => setTimeout(r, 500));
      s = await mountStatus(on, mp);
    }
    return s;
  }

  beforeAll(async () => {
    h = makeHarness('prefetch');
    src = makeTempDir('prefetch-src');
    makeTree(join(src.dir, 'tree'), { seed: 'p', bulkBytes: 12 * 1024 * 1024 });
    image = await buildImage(h, join(src.dir, 'tree'), join(src.dir, 'layout'));
  });
  afterAll(async () => {
    await h.cleanup();
    src.remove();
  });

  it('fetches everything in the background, then serves reads straight from the cache files', async () => {
    const mp = h.mountpoint('pf');
    const s = await mountPrefetched(h, 'fuse-blobs', mp);
    process.stderr.write(`after prefetch: ${JSON.stringify(s)}\n`);
    expect(s.prefetch).toBe('done');
    expect(s.blobsDirect).toBeGreaterThan(0);
    expect(s.bytesFetched).toBeGreaterThan(image.bytes * 0.9);
    expect(compareTrees(join(src.dir, 'tree'), mp)).toEqual([]);
    // The loops now read the cache files (not FUSE files).
    const direct = loopsUnder([h.cacheDir]);
    expect(direct.length).toBe(s.blobsDirect);
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });

  it('the next mount reads the complete blobs without the daemon from the start, and fetches nothing', async () => {
    const mp = h.mountpoint('again');
    await h.ok('mount', '--mode', 'fuse-blobs', ...image.args, mp);
    // Over loop devices (this kernel refuses FUSE passthrough files as file-backed devices) each loop is
    // made on the complete cache file itself: no switch later, whose fsync met the first reads.
    const direct = loopsUnder([h.cacheDir]);
    const s0 = await mountStatus(h, mp);
    process.stderr.write(`next mount: ${direct.length} loops on cache files, ${s0.passthroughOpens} passthrough opens\n`);
    if (direct.length > 0) expect(s0.blobsDirect).toBe(direct.length);
    else expect(s0.passthroughOpens).toBeGreaterThan(0);
    expect(compareTrees(join(src.dir, 'tree'), mp)).toEqual([]);
    const s = await mountStatus(h, mp);
    expect(s.bytesFetched).toBe(0);
    if (direct.length > 0) {
      // A restarted worker finds those loops on the cache files and leases their blobs again (the cache
      // must never evict a file the kernel reads directly).
      const before = (JSON.parse(await h.ok('status', '--json')) as { daemon: { workerPid: number } }).daemon.workerPid;
      process.kill(before, 'SIGKILL');
      let after = before;
      for (let i = 0; i < 100 && (after === before || after === undefined); i++) {
        await new Promise((r) => setTimeout(r, 200));
        after = (JSON.parse((await h.cli('status', '--json')).stdout || '{"daemon":{}}') as { daemon: { workerPid: number } }).daemon.workerPid;
      }
      expect(after).not.toBe(before);
      expect((await mountStatus(h, mp)).blobsDirect).toBe(direct.length);
      expect(compareTrees(join(src.dir, 'tree'), mp)).toEqual([]);
    }
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });

  it('fanotify: when the supervisor dies, no ignore mask outlives its worker, and the blob file cannot be changed', async () => {
    const fresh = makeHarness('prefetch-fanotify-kill');
    try {
      const mp = fresh.mountpoint('pf');
      const s = await mountPrefetched(fresh, 'fanotify', mp);
      expect(s.blobsDirect).toBeGreaterThan(0);
      const holder = fanotifyHolder(fresh.runDir);
      expect(holder).not.toBeNull();
      const ignoredMasks = (): string[] => readFileSync(`/proc/${holder}/fdinfo/3`, 'utf8').split('\n')
        .filter((l) => l.startsWith('fanotify ino:') && !/ ignored_mask:0\b/.test(l));
      expect(ignoredMasks().length).toBeGreaterThan(0);
      const supervisor = fresh.daemonPid()!;
      const workers = readFileSync(`/proc/${supervisor}/task/${supervisor}/children`, 'utf8').trim().split(/\s+/).map(Number).filter((p) => p > 0 && p !== holder);
      process.kill(supervisor, 'SIGKILL');
      expect(await waitUntil(() => !alive(supervisor) && workers.every((w) => !alive(w)), 10_000)).toBe(true);
      // At once, not at the holder's next check: the worker took its masks off before it exited.
      expect(ignoredMasks()).toEqual([]);
      const data = readdirSync(join(fresh.cacheDir, 'blobs')).filter((f) => f.endsWith('.data')).map((f) => join(fresh.cacheDir, 'blobs', f));
      expect(data.length).toBeGreaterThan(0);
      for (const file of data) expect(() => writeFileSync(file, 'x', { flag: 'r+' })).toThrow(/EIO/);
      await fresh.ok('umount', mp);
    } finally {
      await fresh.cleanup();
    }
  });

  it('fanotify: the supervisor killed while its worker cannot run: the holder takes the ignore masks off at once', async () => {
    const fresh = makeHarness('prefetch-fanotify-stopped');
    let worker = 0;
    try {
      const mp = fresh.mountpoint('pf');
      await fresh.ok('mount', '--mode', 'fanotify', '--prefetch', '--wait', ...image.args, mp);
      expect((await mountStatus(fresh, mp)).blobsDirect).toBeGreaterThan(0);
      const holder = fanotifyHolder(fresh.runDir)!;
      const ignoredMasks = (): number => readFileSync(`/proc/${holder}/fdinfo/3`, 'utf8').split('\n')
        .filter((l) => l.startsWith('fanotify ino:') && !/ ignored_mask:0\b/.test(l)).length;
      expect(ignoredMasks()).toBeGreaterThan(0);
      worker = (JSON.parse(await fresh.ok('status', '--json')) as { daemon: { workerPid: number } }).daemon.workerPid;
      process.kill(worker, 'SIGSTOP');
      const t0 = performance.now();
      process.kill(fresh.daemonPid()!, 'SIGKILL');
      // The holder hears of its parent's death by signal (its periodic check also waits for the dead
      // supervisor to be reaped: 1.4-1.7 s here when the signal was off).
      expect(await waitUntil(() => ignoredMasks() === 0, 5_000)).toBe(true);
      const ms = performance.now() - t0;
      process.stderr.write(`ignore masks gone ${ms.toFixed(1)} ms after the supervisor was killed\n`);
      expect(ms).toBeLessThan(500);
      process.kill(worker, 'SIGKILL');
      await fresh.ok('umount', mp);
    } finally {
      if (worker > 0 && alive(worker)) process.kill(worker, 'SIGKILL');
      await fresh.cleanup();
    }
  });

  it('fanotify: the blobs of a prefetched image get ignore marks, and a whole-tree read fetches nothing', async () => {
    const fresh = makeHarness('prefetch-fanotify');
    try {
      const mp = fresh.mountpoint('pf');
      const s = await mountPrefetched(fresh, 'fanotify', mp);
      expect(s.prefetch).toBe('done');
      expect(s.blobsDirect).toBeGreaterThan(0);
      const before = s.requests;
      expect(compareTrees(join(src.dir, 'tree'), mp)).toEqual([]);
      const after = await mountStatus(fresh, mp);
      process.stderr.write(`fanotify after prefetch: ${after.blobsDirect} blobs with ignore marks, ${after.requests - before} requests for a whole-tree read\n`);
      expect(after.requests - before).toBe(0);
      expect(after.bytesFetched).toBe(s.bytesFetched);
      await fresh.ok('umount', mp);
      expect(leftovers(fresh, [mp])).toEqual({ mounts: [], loops: [] });
    } finally {
      await fresh.cleanup();
    }
  });
});
