import { closeSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache/index.js';
import { MAP_FLAG_OPEN, MAP_HEADER_SIZE } from '../../src/cache/map-layout.js';
import { decodeMapAny, encodeMap } from '../../src/cache/presence-map.js';
import { CacheError } from '../../src/util/errors.js';
import { makeBlobFixture, type BlobFixture } from '../helpers/blob-fixture.js';
import { CountingFetcher } from './fake-fetchers.js';
import { tempDir, useCleanups } from './helpers.js';

useCleanups();

/** Fills frames 0..n-1 of a fixture into a cache in `dir` and closes it cleanly. */
async function fill(dir: string, fx: BlobFixture, frames: number): Promise<{ map: string; data: string }> {
  const cache = await openCache({ dir });
  const blob = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
  await blob.ensure(0, frames * fx.toc.frameSize);
  await cache.close();
  return { map: join(dir, 'blobs', `${fx.toc.blobId}.map`), data: join(dir, 'blobs', `${fx.toc.blobId}.data`) };
}

async function reopen(dir: string, fx: BlobFixture): Promise<{ present: number[]; counting: CountingFetcher; close: () => Promise<void>; read: () => Promise<Buffer> }> {
  const counting = new CountingFetcher(fx.fetcher);
  const cache = await openCache({ dir });
  const blob = await cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc });
  // Frames the map could not vouch for are re-verified in the background (bad ones fetched again).
  await blob.idle?.();
  const present = fx.toc.frames.map((_, i) => i).filter((i) => blob.hasFrame?.(i));
  return { present, counting, close: () => cache.close(), read: () => blob.read(0, fx.uncompressed.length) };
}

describe('presence map repair', () => {
  const fx = makeBlobFixture({ size: 10 * 16384 + 100, frameSize: 16384, seed: 21 });

  it('a clean map is loaded as is: present frames need no fetch', async () => {
    const dir = tempDir();
    await fill(dir, fx, 4);
    const r = await reopen(dir, fx);
    expect(r.present).toEqual([0, 1, 2, 3]);
    await r.close();
  });

  it('torn or truncated maps, a flipped bit, a foreign header: rebuilt by re-verifying the data file', async () => {
    const damages: [string, (map: string) => void][] = [
      ['truncated', (m) => truncateSync(m, 50)],
      ['empty', (m) => truncateSync(m, 0)],
      ['torn bitmap', (m) => {
        const fd = openSync(m, 'r+');
        writeSync(fd, Buffer.from([0xff]), 0, 1, MAP_HEADER_SIZE);
        closeSync(fd);
      }],
      ['wrong blob id', (m) => {
        const b = readFileSync(m);
        b[40] = (b[40] as number) ^ 1;
        writeFileSync(m, b);
      }],
      ['missing', (m) => writeFileSync(m, '')],
    ];
    for (const [name, damage] of damages) {
      const dir = tempDir();
      const { map } = await fill(dir, fx, 3);
      damage(map);
      const r = await reopen(dir, fx);
      expect(r.present, name).toEqual([0, 1, 2]);
      expect((await r.read()).equals(fx.uncompressed), name).toBe(true);
      expect(r.counting.requests, name).toBeGreaterThan(0);
      await r.close();
      expect(decodeMapAny(readFileSync(map))?.bits.count, name).toBe(fx.toc.frames.length);
    }
  });

  it('a set bit whose bytes do not verify is dropped (unclean map) and fetched again', async () => {
    const dir = tempDir();
    const { map, data } = await fill(dir, fx, 5);
    // Corrupt frame 2's bytes, and mark the map as left open by a crashed owner.
    const fd = openSync(data, 'r+');
    writeSync(fd, Buffer.from('garbage'), 0, 7, 2 * 16384 + 10);
    closeSync(fd);
    const m = decodeMapAny(readFileSync(map))!;
    writeFileSync(map, encodeMap(m.identity, m.bits, m.lastUsed, MAP_FLAG_OPEN));
    const r = await reopen(dir, fx);
    expect(r.present).toEqual([0, 1, 2, 3, 4]);
    expect(r.counting.ranges).toEqual([{ offset: fx.toc.frames[2]!.compressedOffset, length: fx.toc.frames[2]!.compressedSize }]);
    expect((await r.read()).equals(fx.uncompressed)).toBe(true);
    await r.close();
  });

  it("verifyOnOpen 'always' also checks a clean map", async () => {
    const dir = tempDir();
    const { data } = await fill(dir, fx, 3);
    const fd = openSync(data, 'r+');
    writeSync(fd, Buffer.from('x'), 0, 1, 16384);
    closeSync(fd);
    const cache = await openCache({ dir, verifyOnOpen: 'always' });
    const counting = new CountingFetcher(fx.fetcher);
    const blob = await cache.openBlob(fx.descriptor, { fetcher: counting, toc: fx.toc });
    await blob.idle?.();
    expect([0, 1, 2].map((i) => blob.hasFrame?.(i))).toEqual([true, true, true]);
    expect(counting.ranges).toEqual([{ offset: fx.toc.frames[1]!.compressedOffset, length: fx.toc.frames[1]!.compressedSize }]);
    await cache.close();
  });

  it('a data file of the wrong size is cut back and re-verified', async () => {
    const dir = tempDir();
    const { data } = await fill(dir, fx, 10);
    truncateSync(data, 5 * 16384 + 7);
    const r = await reopen(dir, fx);
    // Frame 5 kept 7 bytes: it fails verification and is fetched again; 6..9 are holes, missing.
    expect(r.present).toEqual([0, 1, 2, 3, 4, 5]);
    expect(r.counting.requests).toBe(1);
    expect((await r.read()).equals(fx.uncompressed)).toBe(true);
    await r.close();
  });
});

describe('cache directory ownership', () => {
  it('a second owner of the same directory is refused with the holder pid; free again after close', async () => {
    const dir = tempDir();
    const first = await openCache({ dir });
    await expect(openCache({ dir })).rejects.toThrow(new RegExp(`in use by another ondemand process \\(pid ${process.pid}\\)`));
    await expect(openCache({ dir })).rejects.toBeInstanceOf(CacheError);
    await first.close();
    const second = await openCache({ dir });
    await second.close();
  });
});
