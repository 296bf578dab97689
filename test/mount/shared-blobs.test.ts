/**
 * One image at two mountpoints shares its cached blobs: unmounting either one never affects the
 * other (a blob's fetcher belongs to the mounts using it, not to the last one made).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { cliBuilt, makeHarness, type Harness } from './harness.js';
import { buildImage, compareTrees, makeTree, pushLayout } from './images.js';

describe.skipIf(!needs('one image at two mountpoints', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'], [haveCommand('docker-registry'), 'docker-registry']))('one image at two mountpoints', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  let reg: TestRegistry;
  const images = new Map<string, string>();
  beforeAll(async () => {
    h = makeHarness('shared');
    src = makeTempDir('shared-src');
    reg = await startRegistry();
    // One image per case: each starts with nothing cached.
    for (const gone of ['later', 'earlier']) {
      makeTree(join(src.dir, gone), { seed: gone });
      const built = await buildImage(h, join(src.dir, gone), join(src.dir, `layout-${gone}`));
      const remote = `${reg.host}/ondemand/shared-${gone}:latest`;
      await pushLayout(h, built.ref, remote);
      images.set(gone, remote);
    }
  });
  afterAll(async () => {
    await h.cleanup();
    await reg?.stop();
    src.remove();
  });

  for (const gone of ['later', 'earlier'] as const) {
    it(`unmounting the ${gone} mount leaves the other reading data not cached yet`, async () => {
      const image = images.get(gone)!;
      const first = h.mountpoint();
      const second = h.mountpoint();
      await h.ok('mount', '--insecure', '--image', image, first);
      await h.ok('mount', '--insecure', '--image', image, second);
      const [away, stays] = gone === 'later' ? [second, first] : [first, second];
      await h.ok('umount', away);
      expect(compareTrees(join(src.dir, gone), stays)).toEqual([]);
      await h.ok('umount', stays);
    });
  }
});
