/** Ten images mounted at once by one daemon: all readable, all unmount cleanly. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, leftovers, makeHarness, type Harness } from './harness.js';
import { buildImage, sha } from './images.js';

const ready = needs('ten mounts', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']);
const N = 10;

describe.skipIf(!ready)('ten images in one daemon', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  const images: string[][] = [];
  const mps: string[] = [];

  beforeAll(async () => {
    h = makeHarness('many');
    src = makeTempDir('many-src');
    for (let i = 0; i < N; i++) {
      const tree = join(src.dir, `tree${i}`);
      mkdirSync(tree, { recursive: true });
      writeFileSync(join(tree, 'id'), `image ${i}\n`);
      writeFileSync(join(tree, 'data.bin'), randomBytes(300 * 1024 + i));
      images.push((await buildImage(h, tree, join(src.dir, `layout${i}`))).args);
      mps.push(h.mountpoint(`m${i}`));
    }
  }, 600_000);
  afterAll(async () => {
    await h.cleanup();
    src.remove();
  });

  it('mounts, reads and unmounts all ten', async () => {
    for (let i = 0; i < N; i++) await h.ok('mount', ...images[i]!, mps[i]!);
    const s = JSON.parse(await h.ok('status', '--json')) as { daemon: { pid: number }; mounts: unknown[] };
    expect(s.mounts).toHaveLength(N);
    for (let i = 0; i < N; i++) {
      expect(readFileSync(join(mps[i]!, 'id'), 'utf8')).toBe(`image ${i}\n`);
      expect(sha(join(mps[i]!, 'data.bin'))).toBe(sha(join(src.dir, `tree${i}`, 'data.bin')));
    }
    for (let i = 0; i < N; i++) await h.ok('umount', mps[i]!);
    expect(leftovers(h, mps)).toEqual({ mounts: [], loops: [] });
    const after = JSON.parse(await h.ok('status', '--json')) as { mounts: unknown[] };
    expect(after.mounts).toEqual([]);
  }, 900_000);
});
