/**
 * resolveRegistryImage against the real registry: an ondemand image by tag, by digest and through an
 * index with platform selection; bootstrap and TOCs load verified; ordinary images and unknown
 * manifest types give one clear error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { resolveRegistryImage, unpackBootstrap } from '../../src/resolve/registry.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pushBlob } from '../../src/registry/upload.js';
import { FormatError, IntegrityError, NotFoundError, errorText } from '../../src/util/errors.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_OCI_CONFIG } from '../../src/format/image/media-types.js';
import { haveCommand, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, pushImage, sha256, type FixtureImage } from './fixtures.js';

const ready = needs('registry resolve', [haveCommand('docker-registry'), 'docker-registry']);

describe.skipIf(!ready)('resolveRegistryImage', () => {
  let reg: TestRegistry;
  let client: RegistryClient;
  let img: FixtureImage;

  beforeAll(async () => {
    reg = await startRegistry({ auth: 'none' });
    client = new RegistryClient({ registry: reg.host, credentials: { env: {}, dockerConfig: '/nonexistent' } });
    img = makeImage();
    await pushImage(client, 'od/app', 'v1', img);
  });
  afterAll(async () => {
    await client?.close();
    await reg?.stop();
  });

  it('resolves by tag: descriptors, verified bootstrap, TOCs, and range reads through the fetcher', async () => {
    const r = await resolveRegistryImage(`${reg.host}/od/app:v1`);
    try {
      expect(r.image.manifestDigest).toBe(img.manifestDigest);
      expect(r.image.chunkSize).toBe(4096);
      expect(r.image.blobs.map((b) => b.digest)).toEqual(img.blobs.map((b) => b.digest));
      expect(r.image.blobs[0]!.blobId).toBe(img.blobs[0]!.toc.blobId);
      expect((await r.loadBootstrap()).equals(img.bootstrap)).toBe(true);
      const toc = await r.loadToc(r.image.blobs[0]!);
      expect(toc).toEqual(img.blobs[0]!.toc);
      const f = toc.frames[2]!;
      const bytes = await r.fetcher.fetchRange(r.image.blobs[0]!.digest, { offset: f.compressedOffset, length: f.compressedSize });
      expect(bytes.equals(img.blobs[0]!.view.subarray(f.uncompressedOffset, f.uncompressedOffset + f.uncompressedSize))).toBe(true);
      expect(r.fetcher.source).toBe(`registry ${reg.host}/od/app`);
    } finally {
      await r.fetcher.close();
    }
  });

  it('src/resolve (resolveImage) hands registry references to the registry branch', async () => {
    const { resolveImage } = await import('../../src/resolve/index.js');
    const r = await resolveImage(`${reg.host}/od/app:v1`);
    try {
      expect(r.image.manifestDigest).toBe(img.manifestDigest);
      expect(r.fetcher.source).toBe(`registry ${reg.host}/od/app`);
    } finally {
      await r.fetcher.close();
    }
  });

  it('resolves by digest and through an index, choosing the platform', async () => {
    const other = makeImage([4096]);
    await pushImage(client, 'od/app', 'arm', other);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPE_OCI_INDEX,
        manifests: [
          { mediaType: MEDIA_TYPE_OCI_MANIFEST, digest: other.manifestDigest, size: other.manifest.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
          { mediaType: MEDIA_TYPE_OCI_MANIFEST, digest: img.manifestDigest, size: img.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
        ],
      }),
    );
    await client.putManifest('od/app', 'multi', index, MEDIA_TYPE_OCI_INDEX);
    for (const [platform, want] of [
      ['linux/amd64', img.manifestDigest],
      ['linux/arm64', other.manifestDigest],
      ['linux/arm64/v8', other.manifestDigest],
    ] as const) {
      const r = await resolveRegistryImage(`${reg.host}/od/app:multi`, { platform });
      expect(r.image.manifestDigest).toBe(want);
      await r.fetcher.close();
    }
    await expect(resolveRegistryImage(`${reg.host}/od/app:multi`, { platform: 'linux/s390x' })).rejects.toThrow(/no manifest for platform linux\/s390x \(available: linux\/arm64\/v8, linux\/amd64\)/);
    const byDigest = await resolveRegistryImage(`${reg.host}/od/app@${img.manifestDigest}`);
    expect(byDigest.image.manifestDigest).toBe(img.manifestDigest);
    await byDigest.fetcher.close();
  });

  it('an ordinary image, an unknown manifest type, or an unknown tag: one clear error each', async () => {
    const config = Buffer.from('{}');
    const layer = Buffer.from('not really a tar');
    await pushBlob(client, 'od/plain', sha256(config), config);
    await pushBlob(client, 'od/plain', sha256(layer), layer);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPE_OCI_MANIFEST,
        config: { mediaType: MEDIA_TYPE_OCI_CONFIG, digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
      }),
    );
    await client.putManifest('od/plain', 'v1', manifest, MEDIA_TYPE_OCI_MANIFEST);
    await expect(resolveRegistryImage(`${reg.host}/od/plain:v1`)).rejects.toThrow(/is not an ondemand image .*tar\+gzip.*ondemand convert/);
    await expect(resolveRegistryImage(`${reg.host}/od/plain:nope`)).rejects.toBeInstanceOf(NotFoundError);
    await expect(resolveRegistryImage(`${reg.host}/never/pushed:v1`)).rejects.toBeInstanceOf(NotFoundError);

    // distribution refuses to store unknown manifest types, so the proxy serves one in its place.
    const proxy = await startFaultProxy(reg.url);
    try {
      const weird = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.example.thing.v1+json', layers: [] });
      proxy.arm({ mode: 'status', status: 200, body: weird, contentType: 'application/vnd.example.thing.v1+json', match: /manifests\/weird$/, times: Infinity });
      const err = await resolveRegistryImage(`${proxy.host}/od/plain:weird`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      expect(errorText(err)).toBe(`${proxy.host}/od/plain:weird has a manifest of unsupported media type "application/vnd.example.thing.v1+json" (image=${proxy.host}/od/plain:weird)`.replace(/ \(image=.*\)$/, ''));
    } finally {
      await proxy.stop();
    }
  });

  it('a bootstrap that inflates past its size or differs from its digest is refused', () => {
    const raw = Buffer.alloc(8192, 7);
    const good = { uncompressedDigest: sha256(raw), uncompressedSize: raw.length };
    expect(unpackBootstrap(gzipSync(raw), good, 'x').equals(raw)).toBe(true);
    const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024));
    expect(() => unpackBootstrap(bomb, good, 'x')).toThrow(FormatError);
    expect(() => unpackBootstrap(gzipSync(Buffer.alloc(8192, 8)), good, 'x')).toThrow(IntegrityError);
    expect(() => unpackBootstrap(Buffer.from('nope'), good, 'x')).toThrow(/not valid gzip/);
  });
});
