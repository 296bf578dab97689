/**
 * Issue 13: the cache never serves bytes it has not verified. Data files deleted, emptied, replaced
 * or modified behind the daemon's back are noticed at open (the clean-close record of the data file's
 * identity); after an unclean stop presence bits are set only once a frame verified again, lazily,
 * without holding up the open.
 */
import { closeSync, copyFileSync, openSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache/index.js';
import { decodeMapAny } from '../../src/cache/presence-map.js';
import { makeBlobFixture, type BlobFixture } from '../helpers/blob-fixture.js';
import { CountingFetcher } from './fake-fetchers.js';
import { tempDir, useCleanups } from './helpers.js';

useCleanups();

const FRAME = 16384;
const fx = makeBlobFixture({ size: 10 * FRAME + 100, frameSize: FRAME, seed: 31 });
const frameCount = fx.toc.frames.length;

function pathsOf(dir: string, f: BlobFixture): { map: string; data: string } {
  return { map: join(dir, 'blobs', `${f.toc.blobId}.map`), data: join(dir, 'blobs', `${f.toc.blobId}.data`) };
}

/** Fills the whole blob and closes cleanly; with `keepOpenMap`, the map as a crashed owner leaves it. */
async function fillAll(dir: string, keepOpenMap = false): Promise<{ map: string; data: string }> {
  const p = pathsOf(dir, fx);
  const cache = await openCache({ dir });
  const blob = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
  await blob.ensure(0, fx.uncompressed.length);
  await blob.idle?.();
  // The map write after the last bits is coalesced and lags idle(): wait until it names every frame.
  while ((decodeMapAny(readFileSync(p.map))?.bits.count ?? 0) < frameCount) await new Promise((r) => setTimeout(r, 2));
  const openMap = readFileSync(p.map);
  await cache.close();
  if (keepOpenMap) writeFileSync(p.map, openMap);
  return p;
}

function overwrite(path: string, at: number, bytes: string): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from(bytes), 0, bytes.length, at);
  closeSync(fd);
}

async function reopen(dir: string) {
  const counting = new CountingFetcher(fx.fetcher);
  const cache = await openCache({ dir });
  const blob = await cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc });
  const view = blob.presenceView!();
  const viewBits = (): number => {
    let n = 0;
    for (let i = 0; i < frameCount; i++) if ((Atomics.load(view.bits, i >> 3) & (1 << (i & 7))) !== 0) n++;
    return n;
  };
  return { cache, blob, counting, viewBits };
}

describe('data file changed behind the cache while its map says present', () => {
  const changes: [string, (data: string) => void][] = [
    ['deleted', (d) => rmSync(d)],
    ['emptied', (d) => truncateSync(d, 0)],
    ['cut short', (d) => truncateSync(d, 3 * FRAME)],
  ];
  for (const [name, change] of changes) {
    it(`a ${name} data file with an intact clean map is not served as zeros (nor made complete for passthrough)`, async () => {
      const dir = tempDir();
      const { data } = await fillAll(dir);
      change(data);
      const r = await reopen(dir);
      expect(r.blob.isComplete()).toBe(false);
      expect((await r.blob.read(0, fx.uncompressed.length)).equals(fx.uncompressed)).toBe(true);
      expect(r.counting.requests).toBeGreaterThan(0);
      await r.cache.close();
    });
  }

  it('bytes overwritten inside a present frame after a clean close are caught at open and fetched again', async () => {
    const dir = tempDir();
    const { data } = await fillAll(dir);
    overwrite(data, 2 * FRAME + 10, 'garbage');
    const r = await reopen(dir);
    expect((await r.blob.read(0, fx.uncompressed.length)).equals(fx.uncompressed)).toBe(true);
    await r.blob.idle?.();
    expect(r.blob.isComplete()).toBe(true);
    expect(r.counting.requests).toBe(1);
    expect(readFileSync(data).equals(fx.uncompressed)).toBe(true);
    await r.cache.close();
  });

  it('a data file replaced by a copy (new inode): no bit is trusted until its frame verified again; nothing fetched', async () => {
    const dir = tempDir();
    const { data } = await fillAll(dir);
    copyFileSync(data, `${data}.copy`);
    renameSync(`${data}.copy`, data);
    const r = await reopen(dir);
    expect(r.viewBits()).toBe(0);
    await r.blob.idle?.();
    expect(r.viewBits()).toBe(frameCount);
    expect(r.counting.requests).toBe(0);
    await r.cache.close();
  });

  it('a clean close records the data file identity; the next open trusts it without re-verifying', async () => {
    const dir = tempDir();
    await fillAll(dir);
    const r = await reopen(dir);
    expect(r.viewBits()).toBe(frameCount);
    expect(r.blob.isComplete()).toBe(true);
    await r.cache.close();
  });
});

describe('after an unclean stop', () => {
  it('open does not wait for re-verification: bits (shared view too) are set per frame once verified, bad frames fetched again', async () => {
    const dir = tempDir();
    const { data, map } = await fillAll(dir, true);
    expect(decodeMapAny(readFileSync(map))?.unclean).toBe(true);
    overwrite(data, 7 * FRAME + 1, 'bad');
    const r = await reopen(dir);
    // Nothing verified yet in this process: readers outside the cache must not trust the file.
    expect(r.viewBits()).toBeLessThan(frameCount);
    expect(r.blob.isComplete()).toBe(false);
    // A read of a not-yet-verified frame is verified on demand (no fetch for a good frame).
    expect((await r.blob.read(9 * FRAME, FRAME)).equals(fx.uncompressed.subarray(9 * FRAME, 10 * FRAME))).toBe(true);
    const frame9 = fx.toc.frames[9]!.compressedOffset;
    expect(r.counting.ranges.some((g) => g.offset <= frame9 && frame9 < g.offset + g.length)).toBe(false);
    await r.blob.idle?.();
    expect(r.viewBits()).toBe(frameCount);
    expect(r.counting.requests).toBe(1); // frame 7 only
    expect((await r.blob.read(0, fx.uncompressed.length)).equals(fx.uncompressed)).toBe(true);
    await r.cache.close();
    expect(decodeMapAny(readFileSync(map))?.unclean).toBe(false);
  });
});
