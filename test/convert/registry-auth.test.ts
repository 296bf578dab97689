/**
 * Convert against a real docker-registry in its three set-ups (issue 4, must-show 1): no auth,
 * htpasswd Basic, and Bearer tokens from the suite's token server. A small image goes oci: →
 * registry (as the source, pushed by skopeo), then registry → registry through `convertImage`;
 * the converted manifest is read back and checked, a file is read lazily through the resolver, the
 * registry fetcher and the shared cache, and a wrong password fails with one clear error that does
 * not echo it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { convertImage } from '../../src/convert/index.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseManifest } from '../../src/format/image/manifest.js';
import { errorText } from '../../src/util/errors.js';
import { resolveImage } from '../../src/resolve/index.js';
import { openImage } from '../../src/reader/open-image.js';
import { openCache } from '../../src/cache/index.js';
import { haveCommand, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type RegistryAuth, type TestRegistry } from '../helpers/registry.js';
import { gzLayer, makeSourceLayout } from './layout-maker.js';
import { makeTar } from './tar-maker.js';

const canRun = needs('convert against docker-registry', [existsSync('/usr/bin/docker-registry'), 'docker-registry'], [haveCommand('skopeo'), 'skopeo'], [haveCommand('htpasswd'), 'htpasswd']);

describe.skipIf(!canRun)('convert: registry auth set-ups', () => {
  const tmp = makeTempDir('convert-auth');
  const registries: TestRegistry[] = [];
  afterAll(async () => {
    for (const r of registries) await r.stop();
    tmp.remove();
  });

  for (const auth of ['none', 'basic', 'token'] as RegistryAuth[]) {
    it(`converts registry → registry with auth ${auth}`, async () => {
      const reg = await startRegistry({ auth });
      registries.push(reg);
      const src = join(tmp.dir, `src-${auth}`);
      await makeSourceLayout(src, 'v1', [
        gzLayer(makeTar([{ name: 'etc/', type: '5' }, { name: 'etc/a', data: Buffer.alloc(100_000, 1) }])),
        gzLayer(makeTar([{ name: 'etc/.wh.a' }, { name: 'etc/b', data: Buffer.alloc(200_000, 2) }])),
      ]);
      const creds = reg.user !== undefined ? `${reg.user}:${reg.password}` : undefined;
      // Asynchronously: the token server runs in this process and must keep answering.
      await promisify(execFile)('skopeo', ['copy', '--dest-tls-verify=false', ...(creds ? ['--dest-creds', creds] : []), `oci:${src}:v1`, `docker://${reg.host}/conv/src:v1`], { timeout: 100_000 });

      const result = await convertImage(`${reg.host}/conv/src:v1`, `${reg.host}/conv/od:v1`, { workDir: tmp.dir, ...(creds ? { creds } : {}) });
      expect(result.platforms[0]!.sourceLayers).toBe(2);
      // Layer 0's only file is whited out: its blob is empty and dropped; layer 1's blob remains.
      expect(result.platforms[0]!.blobs).toHaveLength(1);

      const client = new RegistryClient({ registry: reg.host, ...(creds ? { credentials: { creds } } : {}) });
      try {
        const fetched = await client.getManifest('conv/od', 'v1');
        expect(fetched.digest).toBe(result.digest);
        const image = parseManifest(fetched.bytes, { ref: 'od', manifestDigest: fetched.digest });
        expect(image.blobs).toHaveLength(1);
        for (const b of image.blobs) expect(await client.blobSize('conv/od', b.digest)).toBe(b.size);
        expect(await client.blobSize('conv/od', image.bootstrap.digest)).toBe(image.bootstrap.size);
        expect(await client.blobSize('conv/od', image.config.digest)).toBe(image.config.size);
      } finally {
        await client.close();
      }

      // Lazy read: resolve the converted image, then read one file through the shared cache (range requests).
      const resolved = await resolveImage(`${reg.host}/conv/od:v1`, creds ? { creds } : {});
      const cache = await openCache({ dir: join(tmp.dir, `cache-${auth}`) });
      try {
        const { reader } = await openImage(resolved);
        const blobs = await Promise.all(resolved.image.blobs.map(async (b) => cache.openBlob(b, { fetcher: resolved.fetcher, toc: await resolved.loadToc(b) })));
        const nid = reader.resolve('/etc/b');
        expect(nid).toBeDefined();
        const data = await reader.readFile(nid!, 0, 200_000, { read: (device, offset, length) => blobs[device - 1]!.read(offset, length) });
        expect(data.equals(Buffer.alloc(200_000, 2))).toBe(true);
        expect(blobs[0]!.stats().bytesFetched).toBeGreaterThan(0);
      } finally {
        await cache.close();
        await resolved.fetcher.close();
      }

      if (creds !== undefined) {
        const wrong = `${reg.user}:not-the-password-${auth}`;
        const err = await convertImage(`${reg.host}/conv/src:v1`, `${reg.host}/conv/od:v2`, { workDir: tmp.dir, creds: wrong }).then(() => undefined, (e: unknown) => e);
        expect(err).toBeDefined();
        const text = errorText(err);
        expect(text).not.toContain('not-the-password');
        expect(text).not.toContain(reg.password!);
        expect(text.split('\n')).toHaveLength(1);
      }
    }, 120_000);
  }
});
