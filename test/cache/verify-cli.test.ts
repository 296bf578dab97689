/**
 * Issue 13, point 2: `ondemand cache verify [IMAGE|BLOB]` re-hashes every present frame, drops the
 * bad ones (bit cleared, hole punched) and reports each; exit 1 when any was bad.
 */
import { execFile } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache/index.js';
import { seekData } from '../../src/native/fsops.js';
import { decodeMapAny } from '../../src/cache/presence-map.js';
import { makeBlobFixture } from '../helpers/blob-fixture.js';
import { ensureBuilt, repoRoot } from './dist-build.js';
import { tempDir, useCleanups } from './helpers.js';

useCleanups();
const run = promisify(execFile);
const cli = (...args: string[]) =>
  run(process.execPath, [join(repoRoot, 'bin', 'ondemand'), ...args], { env: { ...process.env, ONDEMAND_CACHE_DIR: '' } }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

beforeAll(() => {
  ensureBuilt('dist/src/cli/commands/cache.js', ['src/cache', 'src/cli/commands', 'src/native']);
});

const FRAME = 16384;
const fxs = [51, 52].map((seed) => makeBlobFixture({ size: 6 * FRAME, frameSize: FRAME, compression: 'none', seed }));

async function fill(dir: string): Promise<void> {
  const cache = await openCache({ dir });
  for (const fx of fxs) {
    const b = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
    await b.ensure(0, fx.uncompressed.length);
  }
  await cache.close();
}

function corrupt(dir: string, blobId: string, at: number): void {
  const fd = openSync(join(dir, 'blobs', `${blobId}.data`), 'r+');
  writeSync(fd, Buffer.from('XX'), 0, 2, at);
  closeSync(fd);
}

describe('ondemand cache verify', () => {
  it('finds a frame modified in place, drops it (bit cleared, hole punched), exits 1; a second run is clean', async () => {
    const dir = tempDir();
    await fill(dir);
    const bad = fxs[1]!.toc.blobId;
    corrupt(dir, bad, 3 * FRAME + 5);
    const first = await cli('cache', 'verify', '--cache-dir', dir);
    expect(first.code).toBe(1);
    const lines = first.stdout.trim().split('\n');
    const reports = lines.filter((l) => l.includes(bad));
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatch(new RegExp(`${bad}.*frame 3.*offset ${3 * FRAME}`));
    expect(first.stdout).toMatch(/2 blobs, 12 frames checked, 1 bad/);
    const map = decodeMapAny(readFileSync(join(dir, 'blobs', `${bad}.map`)))!;
    expect([...map.bits.present()]).toEqual([0, 1, 2, 4, 5]);
    const fd = openSync(join(dir, 'blobs', `${bad}.data`), 'r');
    try {
      expect(seekData(fd, 3 * FRAME)).toBe(4 * FRAME); // frame 3 is a hole now
    } finally {
      closeSync(fd);
    }
    const second = await cli('cache', 'verify', '--cache-dir', dir);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/11 frames checked, 0 bad/);
    // The cache is still usable and fetches the dropped frame again.
    const cache = await openCache({ dir });
    const b = await cache.openBlob(fxs[1]!.descriptor, { fetcher: fxs[1]!.fetcher, toc: fxs[1]!.toc });
    expect((await b.read(0, 6 * FRAME)).equals(fxs[1]!.uncompressed)).toBe(true);
    await cache.close();
  });

  it('verifies one blob given by id (or a unique prefix); refuses while another process owns the cache', async () => {
    const dir = tempDir();
    await fill(dir);
    corrupt(dir, fxs[0]!.toc.blobId, 0);
    const one = await cli('cache', 'verify', fxs[1]!.toc.blobId.slice(0, 16), '--cache-dir', dir);
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/1 blobs, 6 frames checked, 0 bad/);
    const other = await cli('cache', 'verify', `sha256:${fxs[0]!.toc.blobId}`, '--cache-dir', dir);
    expect(other.code).toBe(1);
    expect(other.stdout).toMatch(/frame 0 .*offset 0\b/);
    const cache = await openCache({ dir });
    try {
      const busy = await cli('cache', 'verify', '--cache-dir', dir);
      expect(busy.code).toBe(1);
      expect(busy.stderr).toMatch(/in use by another ondemand process/);
    } finally {
      await cache.close();
    }
  });
});
