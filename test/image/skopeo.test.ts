/**
 * A plain registry accepts our OCI layout: skopeo copies it to Debian's docker-registry, `skopeo
 * inspect --raw` shows our media types, and the copy brought back verifies with `ondemand check`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync, mkdirSync } from 'node:fs';
import { haveCommand, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_ONDEMAND_BLOB, MEDIA_TYPE_ONDEMAND_BOOTSTRAP } from '../../src/format/image/media-types.js';
import { ondemand } from './cli.js';

const ok = needs('skopeo round trip', [haveCommand('skopeo'), 'skopeo'], [haveCommand('docker-registry'), 'docker-registry']);

describe.skipIf(!ok)('skopeo and a plain registry', () => {
  let tmp: { dir: string; remove: () => void };
  let registry: TestRegistry | undefined;

  beforeAll(async () => {
    tmp = makeTempDir('image-skopeo');
    registry = await startRegistry();
  }, 60_000);

  afterAll(async () => {
    await registry?.stop();
    tmp?.remove();
  });

  it('copies the layout to the registry and back; media types survive; check passes', () => {
    const src = join(tmp.dir, 'src');
    mkdirSync(join(src, 'etc'), { recursive: true });
    writeFileSync(join(src, 'etc', 'hello'), 'hello registry\n');
    writeFileSync(join(src, 'big'), Buffer.alloc(3 << 20, 7));
    const layout = join(tmp.dir, 'layout');
    expect(ondemand(['build', src, `oci:${layout}:v1`, '--chunk-size', '64K']).code).toBe(0);
    const dest = `docker://${registry!.host}/ondemand/test:v1`;
    execFileSync('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:v1`, dest], { stdio: 'pipe', timeout: 120_000 });
    const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', dest], { encoding: 'utf8', timeout: 60_000 })) as {
      mediaType: string; layers: { mediaType: string; annotations?: Record<string, string> }[]; annotations?: Record<string, string>;
    };
    expect(raw.mediaType).toBe(MEDIA_TYPE_OCI_MANIFEST);
    expect(raw.layers.map((l) => l.mediaType)).toEqual([MEDIA_TYPE_ONDEMAND_BLOB, MEDIA_TYPE_ONDEMAND_BOOTSTRAP]);
    expect(raw.layers[0]!.annotations?.['org.ondemand.toc.digest']).toMatch(/^sha256:/);
    expect(raw.annotations?.['org.ondemand.chunk-size']).toBe('65536');
    const back = join(tmp.dir, 'back');
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', dest, `oci:${back}:v1`], { stdio: 'pipe', timeout: 120_000 });
    const c = ondemand(['check', `oci:${back}:v1`]);
    expect(c.stderr).toBe('');
    expect(c.code).toBe(0);
  }, 300_000);
});
