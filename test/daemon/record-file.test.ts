/**
 * A mount record file that cannot be read as records (cut short by a crash, edited by hand): the
 * daemon refuses to start, and `mount`, `status` and `umount` each fail with one line that names the
 * file and what to do; the file is left as it was (its mounts would otherwise be forgotten, and the
 * next write would replace it). Before: a JSON parse error over two lines, or "m.objects is not
 * iterable", or (no list of mounts) the file taken for "no mounts" and overwritten.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, leftovers, makeHarness, type Harness } from '../mount/harness.js';
import { buildImage, makeTree, type TestImage } from '../mount/images.js';

const ready = needs('an unreadable mount record file', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']);

const BROKEN: [string, string, RegExp][] = [
  ['cut short', '{"supervisorPid": 1, "mounts": [{"id": "a", "mountp', /not valid \(not JSON\)/],
  ['empty', '', /not valid \(empty\)/],
  ['no list of mounts', '{}', /not valid \(no list of mounts\)/],
  ['a mount without its objects', '{"mounts": [{"id": 1}]}', /not valid \(mount 1 lacks its id, mountpoint, image or objects\)/],
  ['an object of an unknown kind', '{"mounts": [{"id": "a", "mountpoint": "/x", "image": "i", "objects": [{"kind": "bogus"}]}]}', /not valid \(mount \/x has an object of unknown kind "bogus"\)/],
];

describe.skipIf(!ready)('a mount record file that cannot be read', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  let image: TestImage;

  beforeAll(async () => {
    h = makeHarness('record-file');
    src = makeTempDir('record-file-src');
    makeTree(join(src.dir, 'tree'), { seed: 'records' });
    image = await buildImage(h, join(src.dir, 'tree'), join(src.dir, 'layout'));
  });
  afterAll(async () => {
    rmSync(join(h.runDir, 'mounts.json'), { force: true });
    await h.cleanup();
    src.remove();
  });

  for (const [what, text, message] of BROKEN) {
    it(`${what}: mount, status and umount fail with one line naming it; the file is kept`, async () => {
      const file = join(h.runDir, 'mounts.json');
      writeFileSync(file, text);
      const mp = h.mountpoint(what.replace(/\W+/g, '-'));
      for (const args of [['mount', ...image.args, mp], ['status'], ['umount', mp]]) {
        const r = await h.cli(...args);
        expect(r.code, `${args[0]}: ${r.stdout}${r.stderr}`).toBe(1);
        const lines = r.stderr.trim().split('\n');
        expect(lines, args[0]).toHaveLength(1);
        expect(lines[0]).toMatch(message);
        expect(lines[0]).toContain(file);
        expect(lines[0]).toMatch(/^ondemand: (the daemon failed to start: )?mount record file /);
      }
      expect(readFileSync(file, 'utf8')).toBe(text);
      expect(h.daemonPid()).toBeNull();
      expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
    });
  }
});
