/**
 * `mount --prefetch-paths FILE` end to end: the listed files' frames, and nothing else, are fetched
 * after mounting (reading them then fetches nothing more); `--prefetch --wait --json` reports progress
 * and ends with a done event and the image complete. Bad lists fail before anything is mounted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, leftovers, makeHarness, type Harness } from './harness.js';
import { buildImage, compareTrees, makeTree, sha, type TestImage } from './images.js';

const ready = needs('prefetch-paths', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']);

interface StatusMount {
  mountpoint: string; bytesFetched: number; requests: number; prefetchBytesFetched: number; prefetchRequests: number;
  bytesPresent: number; bytesTotal: number; prefetch?: string;
}
interface WaitEvent { event: string; bytes?: number; total?: number; warnings?: string[]; error?: string }

const FRAME = 64 * 1024;
const LISTED = ['data/medium.bin', 'data/nested/deeper/three-mib.bin'];

describe.skipIf(!ready)('mount --prefetch-paths', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  let image: TestImage;
  let list: string;
  const tree = (): string => join(src.dir, 'tree');
  const status = async (mp: string): Promise<StatusMount> => {
    const s = JSON.parse(await h.ok('status', '--json')) as { mounts: StatusMount[] };
    const m = s.mounts.find((x) => x.mountpoint === mp);
    if (!m) throw new Error(`${mp} not in status`);
    return m;
  };
  const events = (stdout: string): WaitEvent[] => stdout.trim().split('\n').map((l) => JSON.parse(l) as WaitEvent);

  beforeAll(async () => {
    h = makeHarness('prefetch-paths');
    src = makeTempDir('prefetch-paths-src');
    makeTree(tree(), { seed: 'pp', bulkBytes: 4 * 1024 * 1024 });
    // Small frames: what is fetched is close to the listed files' bytes.
    image = await buildImage(h, tree(), join(src.dir, 'layout'), 'test', ['--frame-size', String(FRAME), '--compression', 'none']);
    list = join(src.dir, 'paths.txt');
    writeFileSync(list, `# start-up files, in order\n/${LISTED[1]}\n\n${LISTED[0]}\n/no/such/*.file\n`);
  });
  afterAll(async () => {
    await h.cleanup();
    src.remove();
  });

  it('a missing list is a one-line error and nothing is mounted', async () => {
    const mp = h.mountpoint('missing');
    const r = await h.cli('mount', '--mode', 'fuse-blobs', '--prefetch-paths', join(src.dir, 'nope.txt'), ...image.args, mp);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('--prefetch-paths');
    expect(leftovers(h, [mp]).mounts).toEqual([]);
  });

  it('without --prefetch, fetches exactly the listed files; reading them afterwards fetches nothing', async () => {
    const mp = h.mountpoint('paths');
    const r = await h.cli('mount', '--mode', 'fuse-blobs', '--prefetch-paths', list, '--wait', '--json', ...image.args, mp);
    expect(r.code, r.stderr).toBe(0);
    const ev = events(r.stdout);
    expect(ev[0]!.event).toBe('mounted');
    expect(ev[0]!.warnings).toEqual(['prefetch path /no/such/*.file matches no file with data in the image']);
    expect(ev.at(-1)!.event).toBe('done');
    const s = await status(mp);
    expect(s.prefetch).toBe('done');
    const listed = LISTED.reduce((n, p) => n + readFileSync(join(tree(), p)).length, 0);
    // The listed files' frames: each file may start and end inside a frame (uncompressed: stored = raw).
    expect(s.bytesPresent).toBeGreaterThanOrEqual(listed);
    expect(s.bytesPresent).toBeLessThanOrEqual(listed + 4 * FRAME);
    expect(s.bytesPresent).toBeLessThan(s.bytesTotal);
    expect(s.requests).toBe(s.prefetchRequests);
    expect(s.bytesFetched).toBe(s.bytesPresent);
    for (const p of LISTED) expect(sha(join(mp, p))).toBe(sha(join(tree(), p)));
    const after = await status(mp);
    expect(after.bytesFetched).toBe(s.bytesFetched);
    expect(after.requests).toBe(s.requests);
    // Anything else is fetched on demand as before.
    expect(sha(join(mp, 'data/bulk.bin'))).toBe(sha(join(tree(), 'data/bulk.bin')));
    expect((await status(mp)).bytesFetched).toBeGreaterThan(s.bytesFetched);
    const text = await h.ok('status');
    expect(text).toMatch(new RegExp(`${mp}  \\S+  fuse-blobs  \\d+\\.\\d% present`));
    await h.ok('umount', mp);
  });

  it('--prefetch --wait --json: progress events, then done with the image complete', async () => {
    const mp = h.mountpoint('whole');
    const r = await h.cli('mount', '--mode', 'fuse-blobs', '--prefetch', '--prefetch-paths', list, '--prefetch-rate', '64M', '--wait', '--json', ...image.args, mp);
    expect(r.code, r.stderr).toBe(0);
    const ev = events(r.stdout);
    expect(ev.map((e) => e.event)).toContain('progress');
    const done = ev.at(-1)!;
    expect(done.event).toBe('done');
    expect(done.bytes).toBe(done.total);
    const s = await status(mp);
    expect(s.bytesPresent).toBe(s.bytesTotal);
    expect(compareTrees(tree(), mp)).toEqual([]);
    expect((await status(mp)).bytesFetched).toBe(s.bytesFetched);
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });

  it('with --prefetch, the listed files are fetched before the rest of the image', async () => {
    // An empty cache of its own, and a slow prefetch: the order shows while it runs.
    const cold = makeHarness('prefetch-order');
    try {
      const mp = cold.mountpoint('order');
      await cold.ok('mount', '--mode', 'fuse-blobs', '--prefetch', '--prefetch-paths', list, '--prefetch-rate', '512K', ...image.args, mp);
      const listed = LISTED.reduce((n, p) => n + readFileSync(join(tree(), p)).length, 0);
      const st = async (): Promise<StatusMount> => {
        const s = JSON.parse(await cold.ok('status', '--json')) as { mounts: StatusMount[] };
        return s.mounts.find((x) => x.mountpoint === mp)!;
      };
      let s = await st();
      for (let i = 0; i < 300 && s.bytesPresent < listed; i++) {
        await new Promise((r) => setTimeout(r, 50));
        s = await st();
      }
      // As much as the listed files is present and the image is not: every listed frame is among it.
      expect(s.bytesPresent).toBeGreaterThanOrEqual(listed);
      expect(s.bytesPresent).toBeLessThan(s.bytesTotal);
      for (const p of LISTED) expect(sha(join(mp, p))).toBe(sha(join(tree(), p)));
      const after = await st();
      process.stderr.write(`listed ${listed} bytes present while ${s.bytesPresent} of ${s.bytesTotal} were (${after.bytesPresent} after reading them); on-demand requests for them: ${after.requests - after.prefetchRequests}\n`);
      expect(after.requests - after.prefetchRequests).toBe(0);
      await cold.ok('umount', mp);
    } finally {
      await cold.cleanup();
    }
  }, 120_000);
});
