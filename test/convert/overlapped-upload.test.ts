/**
 * Convert to a registry uploads each data blob while the build writes it (issue 18, must-show 4):
 * PATCH chunks reach the registry before the build is done, the PUT `?digest=` closes the upload,
 * and the image in the registry checks. A registry failing mid-upload (an error answer, or a
 * connection reset in the middle of a chunk) ends with the blob pushed again from the finished file
 * and a correct image, never a wrong blob.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertImage, type ProgressEvent } from '../../src/convert/index.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseManifest } from '../../src/format/image/manifest.js';
import { resolveImage } from '../../src/resolve/index.js';
import { checkImage } from '../../src/reader/check.js';
import { openImage } from '../../src/reader/open-image.js';
import { makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type Fault, type FaultProxy, type RecordedRequest } from '../helpers/fault-proxy.js';
import { gzLayer, makeSourceLayout } from './layout-maker.js';
import { makeTar } from './tar-maker.js';

const canRun = needs('convert against docker-registry', [existsSync('/usr/bin/docker-registry'), 'docker-registry']);

const MiB = 1024 * 1024;
/** Incompressible, so the blob is as big as the data and the build takes a while. */
const BIG = randomBytes(32 * MiB);
const SMALL = Buffer.from('a small file, stored inline\n');
const CHUNK = 1 * MiB;

const patches = (reqs: RecordedRequest[]): RecordedRequest[] => reqs.filter((r) => r.method === 'PATCH');

describe.skipIf(!canRun)('convert: data blobs uploaded while they are built', () => {
  const tmp = makeTempDir('convert-overlap');
  const src = join(tmp.dir, 'src');
  let reg: TestRegistry;
  let proxy: FaultProxy;

  beforeAll(async () => {
    reg = await startRegistry({ auth: 'none' });
    proxy = await startFaultProxy(reg.url);
    await makeSourceLayout(src, 'v1', [
      gzLayer(makeTar([{ name: 'data/', type: '5' }, { name: 'data/big', data: BIG }, { name: 'data/small', data: SMALL }])),
    ]);
  }, 120_000);
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    tmp.remove();
  });

  /** Converts through the proxy; returns the requests the proxy saw and when the build ended. */
  async function convertThrough(repo: string, fault?: Fault): Promise<{ requests: RecordedRequest[]; buildDoneAt: number; manifestDigest: string }> {
    const first = proxy.requests.length;
    if (fault) proxy.arm(fault);
    let buildDoneAt = 0;
    const progress = (e: ProgressEvent): void => {
      if (e.kind === 'build-done') buildDoneAt = Date.now();
    };
    try {
      const result = await convertImage(`oci:${src}:v1`, `${proxy.host}/${repo}:v1`, { workDir: tmp.dir, uploadChunkSize: CHUNK, progress, retries: 2 });
      return { requests: proxy.requests.slice(first), buildDoneAt, manifestDigest: result.digest };
    } finally {
      proxy.disarm();
    }
  }

  /** Straight from the registry (not the proxy): every digest checked, the big file read back whole. */
  async function verify(repo: string, manifestDigest: string): Promise<string> {
    const client = new RegistryClient({ registry: reg.host });
    let blobDigest: string;
    try {
      const fetched = await client.getManifest(repo, 'v1');
      expect(fetched.digest).toBe(manifestDigest);
      const image = parseManifest(fetched.bytes, { ref: repo, manifestDigest: fetched.digest });
      expect(image.blobs).toHaveLength(1);
      blobDigest = image.blobs[0]!.digest;
      expect(await client.blobSize(repo, blobDigest)).toBe(image.blobs[0]!.size);
    } finally {
      await client.close();
    }
    const resolved = await resolveImage(`${reg.host}/${repo}:v1`);
    try {
      const report = await checkImage(resolved);
      expect(report.storedBytes).toBeGreaterThan(BIG.length);
      const { reader, devices } = await openImage(resolved);
      const nid = reader.resolve('/data/big');
      expect(nid).toBeDefined();
      expect((await reader.readFile(nid!, 0, BIG.length, devices)).equals(BIG)).toBe(true);
    } finally {
      await resolved.fetcher.close();
    }
    return blobDigest;
  }

  it('sends PATCH chunks of the data blob before the build has finished, then PUT ?digest=', async () => {
    const { requests, buildDoneAt, manifestDigest } = await convertThrough('overlap/ok');
    const chunks = patches(requests);
    // 32 MiB of random data: about 32 chunks of 1 MiB, in order, from offset 0.
    expect(chunks.length).toBeGreaterThanOrEqual(30);
    expect(chunks[0]!.contentRange).toBe(`0-${CHUNK - 1}`);
    expect(buildDoneAt).toBeGreaterThan(0);
    // The overlap itself: the first chunks arrived while the build was still writing the blob.
    expect(chunks[0]!.at).toBeLessThan(buildDoneAt);
    expect(chunks.filter((c) => c.at < buildDoneAt).length).toBeGreaterThan(1);
    // One session for the data blob, closed with the digest; no HEAD for it first.
    const puts = requests.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'));
    const blobDigest = await verify('overlap/ok', manifestDigest);
    const dataPut = puts.find((r) => r.path.includes(`digest=${encodeURIComponent(blobDigest)}`));
    expect(dataPut?.status).toBe(201);
    expect(requests.some((r) => r.method === 'HEAD' && r.path.endsWith(`/blobs/${blobDigest}`))).toBe(false);
  }, 120_000);

  const faults: [string, Fault][] = [
    ['an error answer to the 4th chunk', { mode: 'status', status: 500, match: /^PATCH /, skip: 3 }],
    ['a connection reset in the middle of the 3rd chunk', { mode: 'reset-request', match: /^PATCH /, skip: 2, afterBytes: 300_000 }],
  ];
  for (const [what, fault] of faults) {
    it(`a registry failing mid-upload (${what}) still ends with the right image`, async () => {
      const repo = `overlap/fault-${fault.mode}`;
      const { requests, manifestDigest } = await convertThrough(repo, fault);
      expect(requests.some((r) => r.faulted === fault.mode)).toBe(true);
      const blobDigest = await verify(repo, manifestDigest);
      // The data blob went again, whole, from the finished file: a second session after the fault.
      const faultAt = requests.findIndex((r) => r.faulted !== undefined);
      expect(requests.slice(faultAt).some((r) => r.method === 'POST' && r.path.includes('/blobs/uploads/'))).toBe(true);
      const closed = requests.filter((r) => r.method === 'PUT' && r.path.includes(`digest=${encodeURIComponent(blobDigest)}`) && r.status === 201);
      expect(closed).toHaveLength(1);
      // The failed session was cancelled.
      expect(requests.slice(faultAt).some((r) => r.method === 'DELETE' && r.path.includes('/blobs/uploads/'))).toBe(true);
    }, 120_000);
  }
});
