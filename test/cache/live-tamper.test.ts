/**
 * Issue 13: a data file changed by another process while the cache has it open (root writing into a
 * present frame, cutting or replacing the file) is noticed through the tamper watch (fanotify
 * FAN_MODIFY, by pid): every frame is verified again before it is served, bad ones fetched again, and
 * the next clean close does not vouch for the changed file. Before: the change was served as it was,
 * and a clean close recorded the changed file as good.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache/index.js';
import type { CachedBlob } from '../../src/cache/types.js';
import { haveCommand, isRoot, needs } from '../helpers/env.js';
import { makeBlobFixture } from '../helpers/blob-fixture.js';
import { CountingFetcher } from './fake-fetchers.js';
import { tempDir, useCleanups } from './helpers.js';

useCleanups();

const FRAME = 16384;
const fx = makeBlobFixture({ size: 10 * FRAME + 100, frameSize: FRAME, seed: 47 });
const ready = needs('live cache tampering', [isRoot, 'root (fanotify)'], [haveCommand('dd'), 'dd'], [haveCommand('truncate'), 'truncate']);

/** Another process writes `bytes` into the file at `at` (as a root user tampering would). */
function writeFromOutside(path: string, at: number, bytes: string): void {
  execFileSync('dd', [`of=${path}`, 'bs=1', `seek=${at}`, 'conv=notrunc', 'status=none'], { input: bytes });
}

async function waitForChange(blob: CachedBlob, count = 1): Promise<void> {
  const until = Date.now() + 5000;
  while ((blob.stats().changedBehind ?? 0) < count) {
    if (Date.now() > until) throw new Error('the change was not noticed within 5 s');
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function completeBlob(dir: string) {
  const counting = new CountingFetcher(fx.fetcher);
  const cache = await openCache({ dir });
  const blob = await cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc });
  await blob.ensure(0, fx.uncompressed.length);
  await blob.idle?.();
  expect(blob.isComplete()).toBe(true);
  return { cache, blob, counting, data: join(dir, 'blobs', `${fx.toc.blobId}.data`) };
}

describe.skipIf(!ready)('a data file changed while the cache has it open', () => {
  it('bytes written into a present frame by another process are never served: the frame is verified again and fetched', async () => {
    const { cache, blob, counting, data } = await completeBlob(tempDir());
    const before = counting.requests;
    writeFromOutside(data, 4 * FRAME + 100, 'tampered');
    await waitForChange(blob);
    expect(blob.isComplete()).toBe(false);
    expect((await blob.read(4 * FRAME, FRAME)).equals(fx.uncompressed.subarray(4 * FRAME, 5 * FRAME))).toBe(true);
    await blob.idle?.();
    expect(blob.isComplete()).toBe(true);
    expect(counting.requests).toBe(before + 1);
    expect(readFileSync(data).equals(fx.uncompressed)).toBe(true);
    await cache.close();
  });

  it('a file cut short by another process is read back whole, never as zeros, and gets its size back', async () => {
    const { cache, blob, data } = await completeBlob(tempDir());
    execFileSync('truncate', ['-s', String(3 * FRAME + 5), data]);
    await waitForChange(blob);
    expect((await blob.read(0, fx.uncompressed.length)).equals(fx.uncompressed)).toBe(true);
    await blob.idle?.();
    expect(readFileSync(data).equals(fx.uncompressed)).toBe(true);
    await cache.close();
  });

  it('a clean close after the change does not vouch for the changed file', async () => {
    const dir = tempDir();
    const first = await completeBlob(dir);
    // Many changes: the close comes while verification may still run.
    for (let k = 0; k < 5; k++) writeFromOutside(first.data, k * 2 * FRAME + 7, 'x');
    await waitForChange(first.blob);
    await first.cache.close();
    const cache = await openCache({ dir });
    const counting = new CountingFetcher(fx.fetcher);
    const blob = await cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc });
    expect((await blob.read(0, fx.uncompressed.length)).equals(fx.uncompressed)).toBe(true);
    await cache.close();
  });

  it("a data file replaced by rename is not what transports open: openDataPath names the cache's own file", async () => {
    const { cache, blob, data } = await completeBlob(tempDir());
    copyFileSync(data, `${data}.new`);
    writeFromOutside(`${data}.new`, 100, 'replaced');
    renameSync(`${data}.new`, data);
    expect(readFileSync(blob.openDataPath!).equals(fx.uncompressed)).toBe(true);
    expect((await blob.read(0, fx.uncompressed.length)).equals(fx.uncompressed)).toBe(true);
    await cache.close();
  });

  it("the cache's own writes are not taken for changes", async () => {
    const { cache, blob } = await completeBlob(tempDir());
    await new Promise((r) => setTimeout(r, 100));
    expect(blob.stats().changedBehind).toBeUndefined();
    await cache.close();
  });
});
