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

describe.skipIf(!ready)('build onto a full disk', () => {
  let tmp: { dir: string; remove: () => void };
  let small: string;

  beforeAll(() => {
    tmp = makeTempDir('cli-full');
    mkdirSync(join(tmp.dir, 'src'));
    // Random bytes: gzip keeps them at their size, so 24 MiB cannot fit in 16.
    writeFileSync(join(tmp.dir, 'src', 'big'), randomBytes(24 << 20));
    small = join(tmp.dir, 'small');
    mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', small]);
  });
  afterAll(() => {
    sweepMounts([tmp.dir]);
    tmp.remove();
  });

  for (const compression of ['gzip', 'none']) {
    it(`${compression} frames: one line naming the blob and the full disk, exit 1, no blob left`, async () => {
      const layout = join(small, `layout-${compression}`);
      const r = await runCli(['build', '--compression', compression, join(tmp.dir, 'src'), `oci:${layout}`], { env: process.env });
      expect(r.code).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/cannot write the image blob .*: disk full \(ENOSPC\)/);
      expect(readdirSync(join(layout, 'blobs', 'sha256'))).toEqual([]);
    });
  }
});

describe.skipIf(!ready)('convert with a full work disk', () => {
  let tmp: { dir: string; remove: () => void };
  let small: string;

  beforeAll(async () => {
    tmp = makeTempDir('cli-convert-full');
    // Random bytes: 24 MiB of them cannot fit in 16 MiB, spooled or framed.
    const big = makeTar([{ name: 'big', data: randomBytes(24 << 20) }]);
    const little = makeTar([{ name: 'little', data: randomBytes(1 << 20) }]);
    await makeSourceLayout(join(tmp.dir, 'src'), 'lower-big', [gzLayer(big), gzLayer(little)]);
    await makeSourceLayout(join(tmp.dir, 'src'), 'top-big', [gzLayer(little), gzLayer(big)]);
    small = join(tmp.dir, 'small');
    mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', small]);
  });
  afterAll(() => {
    sweepMounts([tmp.dir]);
    tmp.remove();
  });

  for (const [tag, what] of [['lower-big', /cannot write the work file .*layer-0\.spool: disk full \(ENOSPC\)/], ['top-big', /cannot write the image blob .*: disk full \(ENOSPC\)/]] as const) {
    it(`${tag}: one line naming the file and the full disk, exit 1, nothing left`, async () => {
      const out = join(tmp.dir, `out-${tag}`);
      const r = await runCli(['convert', '--work-dir', small, `oci:${join(tmp.dir, 'src')}:${tag}`, `oci:${out}`], { env: process.env });
      expect(r.code).toBe(1);
      // Progress lines first (stderr is no terminal), then one line for the failure, the last.
      const lines = r.stderr.trim().split('\n');
      expect(lines.filter((l) => l.startsWith('ondemand:')), r.stderr).toHaveLength(1);
      expect(lines.at(-1)).toMatch(what);
      expect(readdirSync(small)).toEqual([]);
    });
  }
});
