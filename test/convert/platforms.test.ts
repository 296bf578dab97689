/**
 * Multi-platform sources: an OCI index of two platform images becomes an index of two converted
 * manifests (each with the platform, its own config unchanged, one blob per source layer with
 * data); `platform` picks one and gives a plain manifest. zstd layers convert like gzip ones.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { convertImage } from '../../src/convert/index.js';
import { parseManifest } from '../../src/format/image/manifest.js';
import { TRACE_VERSION, traceFromAnnotation, type StartupTrace } from '../../src/format/image/trace.js';
import { blobPath, selectManifest } from '../../src/format/image/oci-layout.js';
import { readIndex } from '../../src/fetch/read-layout.js';
import { initLayout, putBlobBytes, tagManifest } from '../../src/build/write-layout.js';
import { haveCommand, makeTempDir, needs } from '../helpers/env.js';
import { gzLayer } from './layout-maker.js';
import { makeTar } from './tar-maker.js';

async function platformImage(dir: string, arch: string, layers: { bytes: Buffer; mediaType: string }[]) {
  const config = await putBlobBytes(dir, Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } })), 'application/vnd.oci.image.config.v1+json');
  const ls = [];
  for (const l of layers) ls.push(await putBlobBytes(dir, l.bytes, l.mediaType));
  const m = await putBlobBytes(dir, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: ls })), 'application/vnd.oci.image.manifest.v1+json');
  return { ...m, platform: { os: 'linux', architecture: arch }, config };
}

const canRun = needs('multi-platform convert', [haveCommand('zstd'), 'zstd']);

describe.skipIf(!canRun)('convert: multi-platform sources and zstd layers', () => {
  const tmp = makeTempDir('convert-plat');
  afterAll(() => tmp.remove());

  it('an index becomes an index of converted manifests; --platform picks one', async () => {
    const src = join(tmp.dir, 'src');
    await initLayout(src);
    const big = Buffer.alloc(2 << 20, 0x11).fill(0x22, 1 << 20);
    const amdTar = makeTar([{ name: 'arch', data: 'amd64\n' }, { name: 'big', data: big }]);
    const armTar = makeTar([{ name: 'arch', data: 'arm64\n' }, { name: 'big', data: big }]);
    const zst = execFileSync('zstd', ['-c', '-q'], { input: armTar });
    const amd = await platformImage(src, 'amd64', [gzLayer(amdTar) as { bytes: Buffer; mediaType: string }]);
    const arm = await platformImage(src, 'arm64', [{ bytes: zst, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }]);
    const index = await putBlobBytes(src, Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [amd, arm].map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.size, platform: m.platform })),
    })), 'application/vnd.oci.image.index.v1+json');
    await tagManifest(src, index, 'multi');

    const out = join(tmp.dir, 'out');
    const all = await convertImage(`oci:${src}:multi`, `oci:${out}:all`, { workDir: tmp.dir });
    expect(all.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(all.platforms.map((p) => p.platform)).toEqual(['linux/amd64', 'linux/arm64']);
    const top = selectManifest(await readIndex(out), 'all', out);
    const converted = JSON.parse(readFileSync(blobPath(out, top.digest), 'utf8')) as { manifests: { digest: string; platform: { architecture: string } }[] };
    expect(converted.manifests.map((m) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
    for (const [i, entry] of converted.manifests.entries()) {
      const image = parseManifest(readFileSync(blobPath(out, entry.digest)), { ref: out, manifestDigest: entry.digest });
      expect(image.config.digest).toBe([amd, arm][i]!.config.digest); // config unchanged
      expect(image.blobs).toHaveLength(1);
      expect(readFileSync(blobPath(out, image.config.digest)).length).toBe(image.config.size);
    }

    const one = await convertImage(`oci:${src}:multi`, `oci:${out}:arm`, { workDir: tmp.dir, platform: 'linux/arm64' });
    expect(one.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(one.digest).toBe(converted.manifests[1]!.digest); // same bytes as the index's arm64 entry
    await expect(convertImage(`oci:${src}:multi`, `oci:${out}:x`, { workDir: tmp.dir, platform: 'linux/s390x' })).rejects.toThrow(/no manifest for platform linux\/s390x/);
    if (process.arch === 'x64') {
      const host = await convertImage(`oci:${src}:multi`, `oci:${out}:host`, { workDir: tmp.dir, platform: 'host' });
      expect(host.digest).toBe(converted.manifests[0]!.digest);
    }

    // --prefetch-trace: every converted manifest carries the trace (annotation), blobs unchanged.
    const blob = firstBlobDigest(out, converted.manifests[0]!.digest);
    const trace: StartupTrace = { version: TRACE_VERSION, manifestDigest: converted.manifests[0]!.digest, recordedAt: new Date().toISOString(), seconds: 10, ranges: [{ blob, offset: 0, length: 4096 }] };
    const traced = await convertImage(`oci:${src}:multi`, `oci:${out}:traced`, { workDir: tmp.dir, platform: 'linux/amd64', prefetchTrace: trace });
    const image = parseManifest(readFileSync(blobPath(out, traced.digest)), { ref: out, manifestDigest: traced.digest });
    expect(traceFromAnnotation(image.prefetchTrace!, 'annotation')).toEqual(trace);
    expect(image.blobs.map((b) => b.digest)).toEqual(parseManifest(readFileSync(blobPath(out, converted.manifests[0]!.digest)), { ref: out, manifestDigest: '' }).blobs.map((b) => b.digest));
  });
});

function firstBlobDigest(layout: string, manifestDigest: string): string {
  return parseManifest(readFileSync(blobPath(layout, manifestDigest)), { ref: layout, manifestDigest }).blobs[0]!.digest;
}
