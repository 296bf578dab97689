/**
 * Image metadata kept with the blobs (src/cache/metadata-store.ts): manifests and TOCs by digest,
 * verified on write and on read, private files never reached through a symlink; tag records; listed
 * by `cache ls`; dropped by gc with the blobs of their image, never while the image is in use.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listCache } from '../../src/cache/index.js';
import { makeManifest, manifestBytes } from '../../src/format/image/manifest.js';
import { MEDIA_TYPE_OCI_CONFIG } from '../../src/format/image/media-types.js';
import { encodeToc } from '../../src/format/image/toc.js';
import { makeBlobFixture, type BlobFixture } from '../helpers/blob-fixture.js';
import { freshCache, tempDir, useCleanups } from './helpers.js';

useCleanups();

const digestOf = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');
const mode = (p: string): number => lstatSync(p).mode & 0o777;

/** An ondemand manifest over `blobs`, with a 4 KiB bootstrap; returns its bytes and the bootstrap. */
function imageOf(blobs: BlobFixture[], seed: number): { bytes: Buffer; digest: string; bootstrap: Buffer } {
  const bootstrap = Buffer.alloc(4096, seed);
  const config = Buffer.from('{}');
  const m = makeManifest({
    config: { mediaType: MEDIA_TYPE_OCI_CONFIG, digest: digestOf(config), size: config.length },
    blobs: blobs.map((b) => b.descriptor),
    bootstrap: { digest: digestOf(Buffer.from(`gz${seed}`)), size: 10, uncompressedDigest: digestOf(bootstrap), uncompressedSize: bootstrap.length },
    chunkSize: 4096,
  });
  const bytes = manifestBytes(m);
  return { bytes, digest: digestOf(bytes), bootstrap };
}

describe('metadata store', () => {
  it('keeps manifests and TOCs by digest as 0600 files in 0700 folders, and tag records', async () => {
    const { cache, dir } = await freshCache();
    const store = cache.metadata;
    const bytes = Buffer.from('{"schemaVersion":2}');
    await store.put('manifest', digestOf(bytes), bytes);
    expect((await store.get('manifest', digestOf(bytes)))?.equals(bytes)).toBe(true);
    const toc = Buffer.from('toc bytes');
    await store.put('toc', digestOf(toc), toc);
    await store.setTag('127.0.0.1:5000/a/b:v1', digestOf(bytes));
    const rec = await store.tag('127.0.0.1:5000/a/b:v1');
    expect(rec).toMatchObject({ reference: '127.0.0.1:5000/a/b:v1', digest: digestOf(bytes) });
    expect(Date.now() - Date.parse(rec!.resolvedAt)).toBeLessThan(60_000);
    expect(await store.tag('127.0.0.1:5000/a/b:v2')).toBeUndefined();
    for (const folder of ['manifests', 'tocs', 'tags', 'bootstraps']) {
      expect(mode(join(dir, folder)), folder).toBe(0o700);
      for (const f of readdirSync(join(dir, folder))) expect(mode(join(dir, folder, f)), `${folder}/${f}`).toBe(0o600);
    }
    // Bytes that do not hash to the digest are refused on write.
    await expect(store.put('manifest', digestOf(Buffer.from('other')), bytes)).rejects.toThrow(/digest/);
  });

  it('a damaged or planted file is never returned: removed, reported missing', async () => {
    const dir = tempDir('md');
    const bytes = Buffer.from('{"schemaVersion":2,"layers":[]}');
    const path = join(dir, 'manifests', digestOf(bytes).slice(7));
    {
      // Written by one process, damaged on disk, read by the next one (which has not seen it yet).
      const { cache } = await freshCache({ dir });
      await cache.metadata.put('manifest', digestOf(bytes), bytes);
      await cache.close();
    }
    writeFileSync(path, Buffer.from('{"schemaVersion":2,"layers":[1]}'), { mode: 0o600 });
    const { cache } = await freshCache({ dir });
    expect(await cache.metadata.get('manifest', digestOf(bytes))).toBeUndefined();
    expect(existsSync(path)).toBe(false);

    // A symlink under a digest's name is not followed, even to the right bytes.
    const target = join(tempDir('md-target'), 'real');
    writeFileSync(target, bytes);
    symlinkSync(target, path);
    expect(await cache.metadata.get('manifest', digestOf(bytes))).toBeUndefined();
    expect(existsSync(path)).toBe(false);
    expect(readFileSync(target).equals(bytes)).toBe(true);

    // Nor on write: a symlink planted at the destination is replaced, its target untouched.
    const victim = join(tempDir('md-victim'), 'victim');
    writeFileSync(victim, 'victim');
    symlinkSync(victim, path);
    await cache.metadata.put('manifest', digestOf(bytes), bytes);
    expect(lstatSync(path).isFile()).toBe(true);
    expect(readFileSync(victim, 'utf8')).toBe('victim');
    expect((await cache.metadata.get('manifest', digestOf(bytes)))?.equals(bytes)).toBe(true);
  });

  it('cache ls counts the metadata; gc drops that of images whose blobs it evicted, never of one in use', async () => {
    const { cache, dir } = await freshCache();
    const fx = [1, 2, 3].map((seed) => makeBlobFixture({ size: 64 * 1024, frameSize: 16384, compression: 'none', seed }));
    // Image A (blobs 0, 1) stays mounted; image B (blobs 1, 2) is not: B shares blob 1 with A.
    const a = imageOf([fx[0]!, fx[1]!], 1);
    const b = imageOf([fx[1]!, fx[2]!], 2);
    for (const img of [a, b]) {
      await cache.metadata.put('manifest', img.digest, img.bytes);
      await cache.bootstrapPath(digestOf(img.bootstrap), () => Promise.resolve(img.bootstrap));
    }
    for (const f of fx) await cache.metadata.put('toc', f.descriptor.tocDigest, encodeToc(f.toc));
    await cache.metadata.setTag('127.0.0.1:1/b:v1', b.digest);
    const opened = [];
    for (const f of fx) {
      const blob = await cache.openBlob(f.descriptor, { fetcher: f.fetcher, toc: f.toc });
      await blob.ensure(0, f.uncompressed.length);
      await blob.idle?.();
      opened.push(blob);
    }
    const unpins = [opened[0]!.pin(), opened[1]!.pin()];

    const before = listCache(dir);
    expect(before.metadata).toMatchObject({ manifests: 2, tocs: 3, tags: [{ reference: '127.0.0.1:1/b:v1', digest: b.digest }] });
    expect(before.metadata.bytes).toBeGreaterThan(0);
    const usage = cache.usage();

    const res = await cache.gc({ maxSize: 0 });
    expect(res.evictedBlobs).toEqual([fx[2]!.toc.blobId]);
    expect(res.droppedManifests).toEqual([b.digest]);
    const after = listCache(dir);
    // B's manifest, its own TOC, bootstrap and tag went; A's manifest, TOCs (the shared one too) stayed.
    expect(after.metadata.manifests).toBe(1);
    expect(after.metadata.tags).toEqual([]);
    expect(readdirSync(join(dir, 'tocs')).sort()).toEqual([fx[0]!, fx[1]!].map((f) => f.descriptor.tocDigest.slice(7)).sort());
    expect(after.bootstraps.map((x) => x.digest)).toEqual([digestOf(a.bootstrap)]);
    expect(await cache.metadata.get('manifest', a.digest)).toBeDefined();
    expect(cache.usage()).toBeLessThan(usage);

    // Unmounted and evicted: A's metadata goes too.
    for (const u of unpins) u();
    const res2 = await cache.gc({ maxSize: 0 });
    expect(res2.droppedManifests).toEqual([a.digest]);
    expect(listCache(dir).metadata).toMatchObject({ manifests: 0, tocs: 0 });
    expect(listCache(dir).bootstraps).toEqual([]);
  });
});
