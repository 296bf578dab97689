/**
 * `ondemand cache verify` while a daemon owns the cache, through the real CLI and daemon: the daemon
 * does the check. The blobs of a mounted image are checked in place while it serves (a bad frame
 * there is found as in test/cache/verify-served.test.ts: a spoiled file is noticed by the tamper
 * watch, or at the next open by its changed ctime, before a verify could see it); a closed blob's
 * frame spoiled while no daemon ran is found in its files, dropped and fetched when read. Before,
 * the command refused: "cache directory ... is in use by another ondemand process".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSync, openSync, readdirSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, leftovers, makeHarness, type Harness } from './harness.js';
import { buildImage, compareTrees, makeTree, type TestImage } from './images.js';

const ready = needs('cache verify through the daemon', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']);

/** Writes two bytes into the middle of every data file of the cache (no daemon may be running). */
function spoilDataFiles(h: Harness): number {
  const dir = join(h.cacheDir, 'blobs');
  const files = readdirSync(dir).filter((n) => n.endsWith('.data')).map((n) => join(dir, n));
  for (const f of files) {
    const fd = openSync(f, 'r+');
    writeSync(fd, Buffer.from('XX'), 0, 2, Math.floor(statSync(f).size / 2));
    closeSync(fd);
  }
  return files.length;
}

describe.skipIf(!ready)('cache verify while the daemon owns the cache', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  let image: TestImage;
  let tree: string;

  beforeAll(async () => {
    h = makeHarness('cache-verify');
    src = makeTempDir('cache-verify-src');
    tree = join(src.dir, 'tree');
    makeTree(tree, { seed: 'verify', bulkBytes: 8 * 1024 * 1024 });
    image = await buildImage(h, tree, join(src.dir, 'layout'));
  });
  afterAll(async () => {
    await h.cleanup();
    src.remove();
  });

  /** The image complete in the cache, then the daemon stopped and every data file spoiled. */
  async function spoiledWhileStopped(mp: string): Promise<number> {
    await h.ok('mount', '--prefetch', '--wait', ...image.args, mp);
    await h.ok('umount', mp);
    await h.ok('daemon', 'stop');
    return spoilDataFiles(h);
  }

  function expectOneBadFrame(r: { code: number; stdout: string; stderr: string }, files: number): void {
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('bad: blob '))).toHaveLength(files);
    expect(r.stdout).toMatch(new RegExp(`frames checked, ${files} bad`));
    expect(r.stderr).toMatch(/^ondemand: cache verify found \d+ bad frames?/);
  }

  it('blobs a mount serves are checked in place while the mount reads right', async () => {
    const mp = h.mountpoint('served');
    await h.ok('mount', '--prefetch', '--wait', ...image.args, mp);
    writeFileSync('/proc/sys/vm/drop_caches', '3');
    const reading = Promise.resolve().then(() => compareTrees(tree, mp));
    const r = await h.cli('cache', 'verify');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/1 blobs, [1-9]\d* frames checked, 0 bad/);
    expect(await reading).toEqual([]);
    writeFileSync('/proc/sys/vm/drop_caches', '3');
    expect(compareTrees(tree, mp)).toEqual([]);
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });

  it('a closed blob: its files are checked by the daemon without a mount; the next mount reads right', async () => {
    const mp = h.mountpoint('closed');
    const files = await spoiledWhileStopped(mp);
    await h.ok('daemon', 'start');
    expectOneBadFrame(await h.cli('cache', 'verify'), files);
    await h.ok('mount', ...image.args, mp);
    expect(compareTrees(tree, mp)).toEqual([]);
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });

  it('an image named: its blobs are checked with the TOCs the CLI resolved, also a closed blob that has none stored', async () => {
    const mp = h.mountpoint('named');
    const files = await spoiledWhileStopped(mp);
    const dir = join(h.cacheDir, 'blobs');
    for (const n of readdirSync(dir).filter((f) => f.endsWith('.toc'))) unlinkSync(join(dir, n));
    await h.ok('daemon', 'start');
    // Without the image, a blob with no stored TOC cannot be checked (and says how it can).
    const all = await h.cli('cache', 'verify');
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/skipped: blob [0-9a-f]+: no stored table of contents \(verify it through its image\)/);
    expectOneBadFrame(await h.cli('cache', 'verify', image.ref), files);
    await h.ok('mount', ...image.args, mp);
    expect(compareTrees(tree, mp)).toEqual([]);
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });
});
