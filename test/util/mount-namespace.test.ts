/**
 * drop_image_mounts, as `ondemand bench`'s start-up runs and the systemd container use it: in a new
 * private mount namespace, the copies of image mounts (here overlays, one with a blank in its path)
 * are gone, except the one kept and what is under it; other mounts stay.
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DROP_IMAGE_MOUNTS_SH } from '../../src/util/mount-namespace.js';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';

const run = promisify(execFile);

describe.skipIf(!needs('mount namespaces', [isRoot, 'root'], [haveCommand('unshare'), 'unshare']))('drop_image_mounts', () => {
  const tmp = makeTempDir('mntns');
  /** Mounts an overlay of fresh dirs named `name` at `target`. */
  const overlay = async (name: string, target: string): Promise<void> => {
    const base = join(tmp.dir, name);
    for (const d of ['lower', 'upper', 'work']) mkdirSync(join(base, d), { recursive: true });
    mkdirSync(target, { recursive: true });
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${base}/lower,upperdir=${base}/upper,workdir=${base}/work`, target]);
  };
  const targets = { dropped: join(tmp.dir, 'with blank'), kept: join(tmp.dir, 'kept'), tmpfs: join(tmp.dir, 'tmpfs') };
  const under = join(targets.kept, 'under');

  beforeAll(async () => {
    await overlay('a', targets.dropped);
    await overlay('b', targets.kept);
    await overlay('c', under);
    mkdirSync(targets.tmpfs);
    await run('mount', ['-t', 'tmpfs', 'tmpfs', targets.tmpfs]);
  });
  afterAll(async () => {
    for (const target of [under, targets.kept, targets.dropped, targets.tmpfs]) await run('umount', ['-l', target]).catch(() => undefined);
    tmp.remove();
  });

  it('leaves the kept mount, what is under it and non-image mounts; drops the others', async () => {
    const { stdout } = await run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c',
      `set -e\n${DROP_IMAGE_MOUNTS_SH}\ndrop_image_mounts "$1"\nawk '{ print $5 }' /proc/self/mountinfo`, 'sh', targets.kept]);
    const inside = stdout.split('\n').map((p) => p.replace(/\\040/g, ' '));
    expect(inside).toContain(targets.kept);
    expect(inside).toContain(under);
    expect(inside).toContain(targets.tmpfs);
    expect(inside).not.toContain(targets.dropped);
  });

  it("with '' keeps no image mount", async () => {
    const { stdout } = await run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c',
      `set -e\n${DROP_IMAGE_MOUNTS_SH}\ndrop_image_mounts ''\nawk '{ print $5 }' /proc/self/mountinfo`]);
    const inside = stdout.split('\n').map((p) => p.replace(/\\040/g, ' '));
    expect(inside).not.toContain(targets.kept);
    expect(inside).not.toContain(targets.dropped);
    expect(inside).toContain(targets.tmpfs);
  });
});
