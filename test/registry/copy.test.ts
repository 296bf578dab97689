/**
 * pushLayoutImage / pullToLayout with multi-platform images: an index in a layout goes to the registry
 * with all its manifests; pull takes the wanted platform, or every platform with allPlatforms; blobs
 * already in the destination are not moved again; cross-repository mounts are used when offered.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readIndex } from '../../src/fetch/read-layout.js';
import { initLayout, putBlobBytes, tagManifest } from '../../src/build/write-layout.js';
import { MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST } from '../../src/format/image/media-types.js';
import { pullToLayout, pushLayoutImage, type CopyEvent } from '../../src/copy/index.js';
import { haveCommand, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, sha256, type FixtureImage } from './fixtures.js';

const ready = needs('push/pull of layouts', [haveCommand('docker-registry'), 'docker-registry']);

async function addImage(dir: string, img: FixtureImage): Promise<void> {
  for (const b of img.blobs) await putBlobBytes(dir, b.stored, 'x');
  await putBlobBytes(dir, img.bootstrapStored, 'x');
  await putBlobBytes(dir, img.config, 'x');
  await putBlobBytes(dir, img.manifest, MEDIA_TYPE_OCI_MANIFEST);
}

describe.skipIf(!ready)('copying images between layouts and the registry', () => {
  let reg: TestRegistry;
  let tmp: { dir: string; remove: () => void };
  const amd = makeImage([64 * 1024]);
  const arm = makeImage([128 * 1024]);
  let indexDigest: string;

  beforeAll(async () => {
    reg = await startRegistry({ auth: 'none' });
    tmp = makeTempDir('copy');
    const src = join(tmp.dir, 'src');
    await initLayout(src);
    await addImage(src, amd);
    await addImage(src, arm);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPE_OCI_INDEX,
        manifests: [
          { mediaType: MEDIA_TYPE_OCI_MANIFEST, digest: amd.manifestDigest, size: amd.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
          { mediaType: MEDIA_TYPE_OCI_MANIFEST, digest: arm.manifestDigest, size: arm.manifest.length, platform: { os: 'linux', architecture: 'arm64' } },
        ],
      }),
    );
    const d = await putBlobBytes(src, index, MEDIA_TYPE_OCI_INDEX);
    indexDigest = d.digest;
    await tagManifest(src, d, 'multi');
  });
  afterAll(async () => {
    await reg?.stop();
    tmp?.remove();
  });

  it('pushes an index with every platform, then mounts into another repository', async () => {
    const events: CopyEvent[] = [];
    const r = await pushLayoutImage(`oci:${join(tmp.dir, 'src')}:multi`, `${reg.host}/copy/app:multi`, { onEvent: (e) => events.push(e) });
    expect(r.digest).toBe(indexDigest);
    expect(r.blobs).toBe(5); // per platform a data blob and a bootstrap, plus the one config both share
    expect(events.filter((e) => e.kind === 'manifest').map((e) => (e as { digest: string }).digest)).toEqual([amd.manifestDigest, arm.manifestDigest, indexDigest]);
    const mounted: CopyEvent[] = [];
    await pushLayoutImage(`oci:${join(tmp.dir, 'src')}:multi`, `${reg.host}/copy/other:v1`, { mountFrom: ['copy/app'], onEvent: (e) => mounted.push(e) });
    const outcomes = mounted.filter((e) => e.kind === 'blob').map((e) => (e as { outcome: string }).outcome);
    expect(new Set(outcomes)).toEqual(new Set(['mounted']));
  });

  it('pulls the platform asked for, every platform on request, and skips blobs it has', async () => {
    const one = join(tmp.dir, 'one');
    const r = await pullToLayout(`${reg.host}/copy/app:multi`, `oci:${one}:arm`, { platform: 'linux/arm64' });
    expect(r.digest).toBe(arm.manifestDigest);
    expect((await readIndex(one)).manifests.map((m) => m.digest)).toEqual([arm.manifestDigest]);
    expect(readFileSync(join(one, 'blobs', 'sha256', arm.blobs[0]!.digest.slice(7))).equals(arm.blobs[0]!.stored)).toBe(true);

    const events: CopyEvent[] = [];
    const all = await pullToLayout(`${reg.host}/copy/app:multi`, `oci:${one}:all`, { allPlatforms: true, onEvent: (e) => events.push(e) });
    expect(all.digest).toBe(indexDigest);
    const outcome = (digest: string): string | undefined => (events.find((e) => e.kind === 'blob' && e.digest === digest) as { outcome: string } | undefined)?.outcome;
    expect(outcome(arm.blobs[0]!.digest)).toBe('present');
    expect(outcome(amd.blobs[0]!.digest)).toBe('downloaded');
    expect(readFileSync(join(one, 'blobs', 'sha256', indexDigest.slice(7))).length).toBeGreaterThan(0);
    expect(sha256(readFileSync(join(one, 'blobs', 'sha256', amd.manifestDigest.slice(7))))).toBe(amd.manifestDigest);
    const tags = (await readIndex(one)).manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']);
    expect(tags.sort()).toEqual(['all', 'arm']);
  });
});
