/**
 * A mount that fails half-way leaves nothing behind: the failure is injected ($ONDEMAND_FAIL_AT, armed
 * by the test-only preload test/helpers/fail-points.mjs) after the FUSE mount and loop devices exist,
 * or after erofs is mounted; each time the command fails with one line and no mount, loop device,
 * private directory or record is left. Without the preload, the variable does nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, leftovers, makeHarness, repoRoot, type Harness } from './harness.js';
import { buildImage, makeTree, type TestImage } from './images.js';

const ready = needs('unwinding failed mounts', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']);

const cases: { at: string; flags: string[]; what: string }[] = [
  { at: 'before-erofs-mount', flags: [], what: 'FUSE mounted, erofs not yet' },
  { at: 'before-erofs-mount', flags: ['--prefetch'], what: 'FUSE mounted and loop devices attached' },
  { at: 'before-usable', flags: [], what: 'erofs mounted' },
];

const FAIL_POINTS = join(repoRoot, 'test', 'helpers', 'fail-points.mjs');

describe.skipIf(!ready)('failed mounts unwind', () => {
  let src: { dir: string; remove: () => void };
  let image: TestImage;
  let builder: Harness;

  beforeAll(async () => {
    builder = makeHarness('unwind-build');
    src = makeTempDir('unwind-src');
    makeTree(join(src.dir, 'tree'), { seed: 'u', bulkBytes: 2 * 1024 * 1024 });
    image = await buildImage(builder, join(src.dir, 'tree'), join(src.dir, 'layout'));
  });
  afterAll(async () => {
    await builder.cleanup();
    src.remove();
  });

  for (const c of cases) {
    it(`undoes everything when failing with ${c.what}`, async () => {
      const h = makeHarness('unwind', { ONDEMAND_FAIL_AT: c.at, NODE_OPTIONS: `--import=${FAIL_POINTS}` });
      try {
        const mp = h.mountpoint('u');
        const r = await h.cli('mount', ...c.flags, ...image.args, mp);
        expect(r.code).toBe(1);
        expect(r.stderr.trim()).toMatch(new RegExp(`^ondemand: injected failure at ${c.at}`));
        expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
        expect(readdirSync(join(h.runDir, 'fuse'))).toEqual([]);
        const records = JSON.parse(readFileSync(join(h.runDir, 'mounts.json'), 'utf8')) as { mounts: unknown[] };
        expect(records.mounts).toEqual([]);
      } finally {
        await h.cleanup();
      }
    });
  }

  it('a production daemon ignores $ONDEMAND_FAIL_AT (no test preload)', async () => {
    const h = makeHarness('unwind-prod', { ONDEMAND_FAIL_AT: 'before-usable' });
    try {
      const mp = h.mountpoint('p');
      await h.ok('mount', ...image.args, mp);
      await h.ok('umount', mp);
    } finally {
      await h.cleanup();
    }
  });
});
