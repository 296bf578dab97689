/** Test helper: an ordinary (source) OCI image layout from layer blobs made in the test. */
import { gzipSync } from 'node:zlib';
import { initLayout, putBlobBytes, tagManifest } from '../../src/build/write-layout.js';

export interface SourceLayer {
  /** The stored layer bytes (tar, gzip'd tar...). */
  bytes: Buffer;
  mediaType?: string;
}

export function gzLayer(tar: Buffer): SourceLayer {
  return { bytes: gzipSync(tar), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
}

export async function makeSourceLayout(dir: string, tag: string, layers: SourceLayer[]): Promise<{ configDigest: string; manifestDigest: string }> {
  await initLayout(dir);
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: [] }, history: [],
  }));
  const configDesc = await putBlobBytes(dir, config, 'application/vnd.oci.image.config.v1+json');
  const layerDescs = [];
  for (const l of layers) layerDescs.push(await putBlobBytes(dir, l.bytes, l.mediaType ?? 'application/vnd.oci.image.layer.v1.tar+gzip'));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDesc, layers: layerDescs }));
  const m = await putBlobBytes(dir, manifest, 'application/vnd.oci.image.manifest.v1+json');
  await tagManifest(dir, m, tag);
  return { configDigest: configDesc.digest, manifestDigest: m.digest };
}
