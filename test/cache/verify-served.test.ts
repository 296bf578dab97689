/**
 * `Cache.verify` of a blob this process has open (a daemon's `cache verify` of a mounted image): the
 * frames are re-hashed in place, a bad one is reported and fetched again at once, and reads made
 * meanwhile and after get the right bytes. The bytes are spoiled by this process itself, so the
 * tamper watch (which drops the cache's own writes by pid) does not see them: bit rot as a verify
 * finds it.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BlobFetcher } from '../../src/fetch/types.js';
import { makeBlobFixture } from '../helpers/blob-fixture.js';
import { freshCache, useCleanups } from './helpers.js';

useCleanups();

const FRAME = 16384;

describe('verify of an open blob', () => {
  it('finds a spoiled frame in place, fetches it again, and reads stay right', async () => {
    const fx = makeBlobFixture({ size: 8 * FRAME, frameSize: FRAME, compression: 'none', seed: 61 });
    const { cache, dir } = await freshCache();
    const blob = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
    await blob.ensure(0, fx.uncompressed.length);
    const fetchedBefore = fx.fetcher.requests;
    const fd = openSync(join(dir, 'blobs', `${fx.toc.blobId}.data`), 'r+');
    writeSync(fd, Buffer.from('XX'), 0, 2, 5 * FRAME + 100);
    closeSync(fd);

    // A read made once the check has begun waits for its frames' checks (one made before it began
    // reads what the file holds: bit rot is found by a verify, not before it).
    const verifying = cache.verify();
    await new Promise((r) => setImmediate(r));
    const reading = blob.read(0, fx.uncompressed.length);
    const [result] = await verifying;
    expect(result).toMatchObject({ blobId: fx.toc.blobId, checked: 8 });
    expect(result!.bad.map((b) => [b.frame, b.offset, b.why])).toEqual([[5, 5 * FRAME, 'digest']]);
    expect((await reading).equals(fx.uncompressed)).toBe(true);
    expect(fx.fetcher.requests).toBe(fetchedBefore + 1);
    expect((await blob.read(0, fx.uncompressed.length)).equals(fx.uncompressed)).toBe(true);

    const [again] = await cache.verify();
    expect(again).toMatchObject({ checked: 8, bad: [] });
  });

  it('waits for the checks of its own frames only: a fetch that hangs meanwhile does not hold it up', async () => {
    const fx = makeBlobFixture({ size: 8 * FRAME, frameSize: FRAME, compression: 'none', seed: 62 });
    let hang = false;
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => { release = r; });
    const fetcher: BlobFetcher = {
      source: 'gated',
      fetchRange: async (digest, range, options) => {
        if (hang) await held;
        return fx.fetcher.fetchRange(digest, range, options);
      },
      fetchBlob: (digest, options) => fx.fetcher.fetchBlob(digest, options),
      close: async () => undefined,
    };
    const { cache } = await freshCache();
    const blob = await cache.openBlob(fx.descriptor, { fetcher, toc: fx.toc });
    await blob.ensure(0, 2 * FRAME);
    hang = true;
    const stuck = blob.read(6 * FRAME, FRAME); // a mount's read of a frame whose fetch hangs
    const [result] = await Promise.race([
      cache.verify(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('verify waited for an unrelated fetch')), 5_000)),
    ]);
    expect(result!.bad).toEqual([]);
    expect(result!.checked).toBeGreaterThanOrEqual(2);
    release();
    expect((await stuck).equals(fx.uncompressed.subarray(6 * FRAME, 7 * FRAME))).toBe(true);
  });
});
