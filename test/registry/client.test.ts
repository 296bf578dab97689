/**
 * The registry client against the real docker-registry in its three set-ups (no auth, htpasswd Basic,
 * token): blob and manifest push/pull, ranges, multi-range, chunked uploads, cross-repository mounts,
 * and the errors a user sees for unknown names and bad credentials.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, NotFoundError, errorText } from '../../src/util/errors.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pushBlob } from '../../src/registry/upload.js';
import { MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_CONFIG } from '../../src/format/image/media-types.js';
import { haveCommand, needs } from '../helpers/env.js';
import { startRegistry, type RegistryAuth, type TestRegistry } from '../helpers/registry.js';

const ready = needs('registry client', [haveCommand('docker-registry'), 'docker-registry'], [haveCommand('htpasswd'), 'htpasswd'], [haveCommand('openssl'), 'openssl']);

function sha256(b: Buffer): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

function clientFor(reg: TestRegistry, extra: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {}): RegistryClient {
  return new RegistryClient({
    registry: reg.host,
    credentials: { creds: reg.user ? `${reg.user}:${reg.password}` : undefined, env: {}, dockerConfig: '/nonexistent/config.json' },
    ...extra,
  });
}

for (const auth of ['none', 'basic', 'token'] as RegistryAuth[]) {
  describe.skipIf(!ready)(`registry client, auth=${auth}`, () => {
    let reg: TestRegistry;
    let client: RegistryClient;
    const data = randomBytes(3 * 1024 * 1024 + 123);
    const digest = sha256(data);

    beforeAll(async () => {
      reg = await startRegistry({ auth });
      client = clientFor(reg, { monolithicUploadLimit: 1024 * 1024, uploadChunkSize: 700 * 1024 });
    });
    afterAll(async () => {
      await client?.close();
      await reg?.stop();
    });

    it('pushes a big blob in PATCH chunks, skips it the second time, mounts it into another repository', async () => {
      expect(await pushBlob(client, 'a/one', digest, data)).toBe('uploaded');
      expect(await pushBlob(client, 'a/one', digest, data)).toBe('exists');
      expect(await pushBlob(client, 'b/two', digest, data, { mountFrom: ['a/one'] })).toBe('mounted');
      expect(await client.blobSize('b/two', digest)).toBe(data.length);
      const got = await client.getBlob('b/two', digest);
      expect(got.equals(data)).toBe(true);
    });

    it('reads ranges, merged ranges and multi-range requests byte-exactly', async () => {
      const small = randomBytes(200_000);
      const d = sha256(small);
      await pushBlob(client, 'a/ranges', d, small);
      const r = await client.getBlobRange('a/ranges', d, { offset: 12345, length: 5000 });
      expect(r.equals(small.subarray(12345, 17345))).toBe(true);
      const spans = [
        { offset: 100, length: 10 },
        { offset: 110, length: 90 }, // touches the first: merged
        { offset: 150_000, length: 4096 },
        { offset: 50_000, length: 1 },
        { offset: 199_990, length: 10 },
      ];
      const parts = await client.getBlobRanges('a/ranges', d, spans);
      spans.forEach((s, i) => expect(parts[i]!.equals(small.subarray(s.offset, s.offset + s.length))).toBe(true));
      expect(client.multiRangeSupported).toBe(true); // distribution answers multipart/byteranges
      await expect(client.getBlobRange('a/ranges', d, { offset: 199_999, length: 2 })).rejects.toThrow();
    });

    it('pushes and pulls manifests and indexes by tag and by digest', async () => {
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
      await pushBlob(client, 'a/img', sha256(config), config);
      await pushBlob(client, 'a/img', digest, data, { mountFrom: ['a/one'] });
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA_TYPE_OCI_MANIFEST,
          config: { mediaType: MEDIA_TYPE_OCI_CONFIG, digest: sha256(config), size: config.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: data.length }],
        }),
      );
      const md = await client.putManifest('a/img', 'v1', manifest, MEDIA_TYPE_OCI_MANIFEST);
      expect(md).toBe(sha256(manifest));
      const byTag = await client.getManifest('a/img', 'v1');
      expect(byTag.bytes.equals(manifest)).toBe(true);
      expect(byTag.mediaType).toBe(MEDIA_TYPE_OCI_MANIFEST);
      expect((await client.getManifest('a/img', md)).digest).toBe(md);
      const index = Buffer.from(
        JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: [{ mediaType: MEDIA_TYPE_OCI_MANIFEST, digest: md, size: manifest.length, platform: { os: 'linux', architecture: 'amd64' } }] }),
      );
      await client.putManifest('a/img', 'multi', index, MEDIA_TYPE_OCI_INDEX);
      expect((await client.getManifest('a/img', 'multi')).mediaType).toBe(MEDIA_TYPE_OCI_INDEX);
      expect((await client.headManifest('a/img', 'v1'))?.digest).toBe(md);
      expect(await client.headManifest('a/img', 'nope')).toBeUndefined();
    });

    it('says clearly when a repository, tag or blob does not exist', async () => {
      await expect(client.getManifest('no/such', 'latest')).rejects.toBeInstanceOf(NotFoundError);
      await expect(client.getManifest('a/img', 'missing-tag')).rejects.toThrow(/manifest .*a\/img:missing-tag not found/);
      const absent = sha256(Buffer.from('absent'));
      await expect(client.getBlob('a/img', absent)).rejects.toBeInstanceOf(NotFoundError);
    });

    it.skipIf(auth === 'none')('wrong password: one clear AuthError that does not contain the password', async () => {
      const secret = `Wr0ng-${randomBytes(6).toString('hex')}`;
      const bad = new RegistryClient({ registry: reg.host, credentials: { creds: `${reg.user}:${secret}`, env: {} } });
      try {
        const err = await bad.getManifest('a/img', 'v1').then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(AuthError);
        const text = errorText(err);
        expect(text).not.toContain(secret);
        expect(text).not.toContain(Buffer.from(`${reg.user}:${secret}`).toString('base64'));
        expect(text.split('\n')).toHaveLength(1);
        expect(text).toMatch(/tester/);
      } finally {
        await bad.close();
      }
    });

    it.skipIf(auth === 'none')('anonymous access to a protected registry fails with an AuthError', async () => {
      const anon = new RegistryClient({ registry: reg.host, credentials: { env: {}, dockerConfig: '/nonexistent/config.json' } });
      try {
        await expect(anon.getManifest('a/img', 'v1')).rejects.toBeInstanceOf(AuthError);
      } finally {
        await anon.close();
      }
    });
  });
}
