/**
 * Issue 13: eviction never truncates a data file under someone reading it. One test (or two) per race:
 * a presence view made during an eviction, isComplete() during an eviction (and the passthrough lease),
 * the fscache copy after ensure, and an eviction racing openBlob. Timing is controlled by calling into
 * the cache synchronously while an eviction is between its steps, never by sleeping.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OPEN_HOLD_MS } from '../../src/cache/backend.js';
import type { Cache } from '../../src/cache/index.js';
import { EPOCH, viewCovers } from '../../src/cache/presence-view.js';
import type { CachedBlob } from '../../src/cache/types.js';
import { blobSource, copyEnsured, type FscacheSource } from '../../src/transport/fscache/source.js';
import { FuseBlobsFilesystem } from '../../src/transport/fuse-blobs/filesystem.js';
import { makeBlobFixture, type BlobFixture } from '../helpers/blob-fixture.js';
import { freshCache, tempDir, useCleanups } from './helpers.js';
import { ManualClock } from './manual-clock.js';

useCleanups();

const SIZE = 64 * 1024;
const FRAME = 16 * 1024;

function fixture(seed: number): BlobFixture {
  return makeBlobFixture({ size: SIZE, frameSize: FRAME, compression: 'none', seed });
}

/** A complete, unpinned, idle blob: the first thing a gc evicts. */
async function completeBlob(cache: Cache, fx: BlobFixture): Promise<CachedBlob> {
  const blob = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
  expect((await blob.read(0, SIZE)).equals(fx.uncompressed)).toBe(true);
  await blob.idle?.();
  expect(blob.isComplete()).toBe(true);
  return blob;
}

/** A complete blob left on disk by a cache that closed; returns a second cache on the same directory. */
async function blobOnDisk(fx: BlobFixture, options: { clock?: ManualClock } = {}): Promise<Cache> {
  const dir = tempDir();
  const first = (await freshCache({ dir })).cache;
  await completeBlob(first, fx);
  await first.close();
  return (await freshCache({ dir, idleCloseMs: 0, ...options })).cache;
}

describe('leases: eviction never truncates a data file under a reader (issue 13)', () => {
  it('race 1: a presence view made while an eviction runs is odd (untrusted) until the eviction ends', async () => {
    const { cache } = await freshCache();
    const fx = fixture(1);
    const blob = await completeBlob(cache, fx);
    const gc = cache.gc({ maxSize: 0 }); // the eviction is between its steps when this returns
    const view = blob.presenceView!();
    // A reader thread's protocol: epoch, bits, pread, epoch again.
    const e1 = Atomics.load(view.state, EPOCH);
    const covered = viewCovers(view, 0, SIZE);
    expect((await gc).evictedBlobs).toContain(fx.toc.blobId);
    const bytes = readFileSync(view.dataPath);
    const e2 = Atomics.load(view.state, EPOCH);
    // Bytes a reader would accept (even epoch, bits set, epoch unchanged) must be right.
    if ((e1 & 1) === 0 && covered && e2 === e1) expect(bytes.equals(fx.uncompressed), 'a reader accepted the truncated file').toBe(true);
    expect(e1 & 1).toBe(1);
    expect(e2 & 1).toBe(0); // trusted again after the eviction, with its bits cleared
    expect(viewCovers(view, 0, SIZE)).toBe(false);
  });

  it('race 2: isComplete() is false while an eviction runs, so nothing hands the file to the kernel then', async () => {
    const { cache } = await freshCache();
    const fx = fixture(2);
    const blob = await completeBlob(cache, fx);
    const gc = cache.gc({ maxSize: 0 });
    const unpin = blob.pin(); // a mount opening and pinning the blob while the eviction is under way
    expect(blob.isComplete()).toBe(false);
    expect(blob.leaseIfComplete?.()).toBeUndefined();
    await gc;
    expect(blob.isComplete()).toBe(false);
    unpin();
  });

  it('race 2: a passthrough open holds a lease until RELEASE: gc passes the blob over, the file stays whole', async () => {
    const { cache } = await freshCache();
    const fx = fixture(3);
    const blob = await completeBlob(cache, fx);
    const bootstrap = join(tempDir('boot'), 'bootstrap');
    writeFileSync(bootstrap, Buffer.alloc(4096));
    const fs = new FuseBlobsFilesystem({ bootstrapPath: bootstrap, blobs: [blob] });
    const ino = fs.lookup(1, Buffer.from(blob.blobId)).ino;
    const opened = fs.open(ino);
    expect(opened.passthroughPath).toBe(blob.openDataPath);
    // Unpinned (e.g. a mount detached lazily, still open in the kernel): only the lease keeps it.
    expect((await cache.gc({ maxSize: 0 })).evictedBlobs).not.toContain(blob.blobId);
    expect(readFileSync(blob.dataPath).equals(fx.uncompressed)).toBe(true);
    fs.release(ino, opened.fh ?? 0n);
    expect((await cache.gc({ maxSize: 0 })).evictedBlobs).toContain(blob.blobId);
    await fs.close();
  });

  it('a lease taken on a complete blob keeps it whole; released, it is evicted', async () => {
    const { cache } = await freshCache();
    const fx = fixture(4);
    const blob = await completeBlob(cache, fx);
    const release = blob.leaseIfComplete!();
    expect(release).toBeDefined();
    expect((await cache.gc({ maxSize: 0 })).evictedBlobs).toEqual([]);
    expect(blob.isComplete()).toBe(true);
    release!();
    release!(); // idempotent
    expect((await cache.gc({ maxSize: 0 })).evictedBlobs).toEqual([blob.blobId]);
  });

  it('race 3: the fscache copy runs under a lease taken before ensure and released after the copy', async () => {
    const events: string[] = [];
    const fake: FscacheSource = {
      size: SIZE,
      dataPath: '/nonexistent',
      ensure: () => { events.push('ensure'); return Promise.resolve(); },
      lease: () => { events.push('lease'); return () => events.push('release'); },
    };
    await copyEnsured(fake, 0, SIZE, () => { events.push('copy'); return Promise.resolve(); });
    expect(events).toEqual(['lease', 'ensure', 'copy', 'release']);
    events.length = 0;
    await expect(copyEnsured(fake, 0, SIZE, () => Promise.reject(new Error('short write')))).rejects.toThrow('short write');
    expect(events).toEqual(['lease', 'ensure', 'release']);
  });

  it('race 3: an eviction between the fscache ensure and its copy finds the blob leased; one already running is waited for', async () => {
    const { cache } = await freshCache();
    const fx = fixture(5);
    const blob = await completeBlob(cache, fx);
    const source = blobSource(blob);
    expect('lease' in source).toBe(true);
    // An eviction attempted after ensure, while the copy reads the file.
    const copied = await copyEnsured(source, 0, SIZE, async () => {
      expect((await cache.gc({ maxSize: 0 })).evictedBlobs).toEqual([]);
      return readFile(source.dataPath);
    });
    expect(copied.equals(fx.uncompressed)).toBe(true);
    // An eviction already running when the READ comes: ensure waits for it and fetches again.
    const gc = cache.gc({ maxSize: 0 });
    const during = copyEnsured(source, 0, SIZE, () => readFile(source.dataPath));
    expect((await gc).evictedBlobs).toEqual([blob.blobId]);
    expect((await during).equals(fx.uncompressed)).toBe(true);
  });

  it('race 4: an eviction of a closed blob that starts just before an open finishes before the open reads its map', async () => {
    const fx = fixture(6);
    const cache = await blobOnDisk(fx);
    const gc = cache.gc({ maxSize: 0 }); // unlinking the map, data and TOC has begun
    const opening = cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
    const [result, blob] = await Promise.all([gc, opening]);
    expect(result.evictedBlobs).toContain(fx.toc.blobId);
    // The open saw the blob gone: empty, and its files exist (a transport opening them by name finds them).
    expect(blob.stats().framesPresent).toBe(0);
    expect(blob.isComplete()).toBe(false);
    expect(existsSync(blob.dataPath)).toBe(true);
    expect(existsSync(blob.mapPath!)).toBe(true);
    await blob.ensure(0, SIZE);
    expect(blob.isComplete()).toBe(true);
    expect(readFileSync(blob.dataPath).equals(fx.uncompressed)).toBe(true);
  });

  it('race 4: a blob just opened is not evicted before its opener pins or uses it', async () => {
    const fx = fixture(7);
    const cache = await blobOnDisk(fx);
    const blob = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
    // Its map's last use is old, so it heads the LRU: an eviction now would take it before the pin.
    expect((await cache.gc({ maxSize: 0 })).evictedBlobs).toEqual([]);
    expect(blob.isComplete()).toBe(true);
    const unpin = blob.pin();
    expect((await cache.gc({ maxSize: 0 })).evictedBlobs).toEqual([]);
    unpin();
    expect((await cache.gc({ maxSize: 0 })).evictedBlobs).toEqual([blob.blobId]);
  });

  it('race 4: the hold of an opener that never comes back lapses after OPEN_HOLD_MS', async () => {
    const fx = fixture(8);
    const clock = new ManualClock();
    const cache = await blobOnDisk(fx, { clock });
    const blob = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
    expect((await cache.gc({ maxSize: 0 })).evictedBlobs).toEqual([]);
    await clock.advance(OPEN_HOLD_MS);
    expect((await cache.gc({ maxSize: 0 })).evictedBlobs).toEqual([blob.blobId]);
  });
});
