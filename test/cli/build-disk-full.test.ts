/**
 * `ondemand build` onto a disk that fills up: one line naming the blob and "disk full", a non-zero
 * exit, and no blob left in the layout (the writes run on the thread pool; their failure still ends
 * the build). The same for `ondemand convert` whose work directory fills up, while it spools a lower
 * layer or while it lays out the top layer as that streams in: one error line, exit 1, no work files left.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { gzLayer, makeSourceLayout } from '../convert/layout-maker.js';
import { makeTar } from '../convert/tar-maker.js';
import { cliBuilt } from '../mount/harness.js';
import { runCli, sweepMounts } from './helpers.js';

const ready = needs('build onto a full disk', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']);

/** A temp dir with `small`, a 16 MiB tmpfs, made before and removed after the suite's tests. */
function withSmallDisk(name: string, prepare: (dir: string) => Promise<void>): { readonly dir: string; readonly small: string } {
  let tmp: { dir: string; remove: () => void } | undefined;
  beforeAll(async () => {
    tmp = makeTempDir(name);
    await prepare(tmp.dir);
    mkdirSync(join(tmp.dir, 'small'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', join(tmp.dir, 'small')]);
  });
  afterAll(() => {
    if (tmp === undefined) return;
    sweepMounts([tmp.dir]);
    tmp.remove();
  });
  return {
    get dir() { return tmp!.dir; },
    get small() { return join(tmp!.dir, 'small'); },
  };
}

describe.skipIf(!ready)('build onto a full disk', () => {
  const disk = withSmallDisk('cli-full', async (dir) => {
    mkdirSync(join(dir, 'src'));
    // Random bytes: gzip keeps them at their size, so 24 MiB cannot fit in 16.
    writeFileSync(join(dir, 'src', 'big'), randomBytes(24 << 20));
  });

  for (const compression of ['gzip', 'none']) {
    it(`${compression} frames: one line naming the blob and the full disk, exit 1, no blob left`, async () => {
      const layout = join(disk.small, `layout-${compression}`);
      const r = await runCli(['build', '--compression', compression, join(disk.dir, 'src'), `oci:${layout}`], { env: process.env });
      expect(r.code).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/cannot write the image blob .*: disk full \(ENOSPC\)/);
      expect(readdirSync(join(layout, 'blobs', 'sha256'))).toEqual([]);
    });
  }
});

describe.skipIf(!ready)('convert with a full work disk', () => {
  const disk = withSmallDisk('cli-convert-full', async (dir) => {
    // Random bytes: 24 MiB of them cannot fit in 16 MiB, spooled or framed.
    const big = makeTar([{ name: 'big', data: randomBytes(24 << 20) }]);
    const little = makeTar([{ name: 'little', data: randomBytes(1 << 20) }]);
    await makeSourceLayout(join(dir, 'src'), 'lower-big', [gzLayer(big), gzLayer(little)]);
    await makeSourceLayout(join(dir, 'src'), 'top-big', [gzLayer(little), gzLayer(big)]);
  });

  for (const [tag, what] of [['lower-big', /cannot write the work file .*layer-0\.spool: disk full \(ENOSPC\)/], ['top-big', /cannot write the image blob .*: disk full \(ENOSPC\)/]] as const) {
    it(`${tag}: one line naming the file and the full disk, exit 1, nothing left`, async () => {
      const out = join(disk.dir, `out-${tag}`);
      const r = await runCli(['convert', '--work-dir', disk.small, `oci:${join(disk.dir, 'src')}:${tag}`, `oci:${out}`], { env: process.env });
      expect(r.code).toBe(1);
      // Progress lines first (stderr is no terminal), then one line for the failure, the last.
      const lines = r.stderr.trim().split('\n');
      expect(lines.filter((l) => l.startsWith('ondemand:')), r.stderr).toHaveLength(1);
      expect(lines.at(-1)).toMatch(what);
      expect(readdirSync(disk.small)).toEqual([]);
    });
  }
});
