/**
 * End to end through the real daemon, FUSE and erofs: an image built with `ondemand build` into an
 * OCI layout is mounted lazily, read, compared with its source, unmounted and mounted again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, leftovers, makeHarness, type Harness } from './harness.js';
import { buildImage, compareTrees, makeTree, mountStatus, sha, type TestImage } from './images.js';

const ready = needs('mount from an OCI layout', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']);

describe.skipIf(!ready)('mount a local image (OCI layout, or mkfs.erofs until ondemand build lands)', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  let image: TestImage;
  let mp: string;

  beforeAll(async () => {
    h = makeHarness('layout');
    src = makeTempDir('layout-src');
    makeTree(join(src.dir, 'tree'), { seed: 'a' });
    image = await buildImage(h, join(src.dir, 'tree'), join(src.dir, 'layout'));
    mp = h.mountpoint('root');
  });
  afterAll(async () => {
    await h.cleanup();
    src.remove();
  });

  it('mounts lazily: reading one file fetches a small fraction of the image', async () => {
    const out = await h.ok('mount', '--mode', 'fuse-blobs', ...image.args, mp);
    process.stderr.write(`image made with ${image.how}: ${image.bytes} stored bytes\n`);
    expect(out).toMatch(/mounted .* \(mode fuse-blobs/);
    const before = await mountStatus(h, mp);
    expect(sha(join(mp, 'data', 'medium.bin'))).toBe(sha(join(src.dir, 'tree', 'data', 'medium.bin')));
    const after = await mountStatus(h, mp);
    const fetched = after.bytesFetched - before.bytesFetched;
    process.stderr.write(`lazy read of a 200 KiB file: fetched ${fetched} of ${image.bytes} bytes (${((100 * fetched) / image.bytes).toFixed(1)} %)\n`);
    expect(fetched).toBeGreaterThan(0);
    expect(fetched).toBeLessThan(image.bytes / 4);
  });

  it('shows the source tree exactly', () => {
    expect(compareTrees(join(src.dir, 'tree'), mp)).toEqual([]);
    expect(readFileSync(join(mp, 'data', 'motd-link'), 'utf8')).toBe('tree a\n');
  });

  it('unmounts without leaving mounts or loop devices', async () => {
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });

  it('mounted again, fetches 0 bytes (everything is cached) and uses passthrough for complete blobs', async () => {
    await h.ok('mount', '--mode', 'fuse-blobs', ...image.args, mp);
    expect(compareTrees(join(src.dir, 'tree'), mp)).toEqual([]);
    const s = await mountStatus(h, mp);
    process.stderr.write(`second mount: fetched ${s.bytesFetched} bytes, passthrough opens ${s.passthroughOpens ?? 'n/a'}\n`);
    expect(s.bytesFetched).toBe(0);
    expect(s.passthroughOpens ?? 0).toBeGreaterThan(0);
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });
});
