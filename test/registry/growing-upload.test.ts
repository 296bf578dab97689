/**
 * pushGrowingBlob against the real docker-registry, fed by the builder's own BlobProgress while this
 * test plays the writer: chunks go as soon as they are written and never past what is written, the
 * writer is never waited for, a failed build cancels the session, a blob smaller than a chunk is left
 * to pushBlob.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../src/registry/client.js';
import { pushGrowingBlob, type GrowingBlobSource } from '../../src/registry/upload.js';
import { BlobProgress } from '../../src/build/growing-blob.js';
import { errorText } from '../../src/util/errors.js';
import { haveCommand, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';

const ready = needs('growing upload', [haveCommand('docker-registry'), 'docker-registry']);
const CHUNK = 64 * 1024;

function sha256(b: Buffer): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.skipIf(!ready)('pushGrowingBlob', () => {
  const tmp = makeTempDir('growing-upload');
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let client: RegistryClient;

  beforeAll(async () => {
    reg = await startRegistry({ auth: 'none' });
    proxy = await startFaultProxy(reg.url);
    client = new RegistryClient({ registry: proxy.host, uploadChunkSize: CHUNK });
  });
  afterAll(async () => {
    await client?.close();
    await proxy?.stop();
    await reg?.stop();
    tmp.remove();
  });

  /** A writer the test drives: appends to the file, then tells the progress (as BlobWriter does). */
  function grow(name: string): { progress: BlobProgress; source: GrowingBlobSource; append(b: Buffer): void } {
    const path = join(tmp.dir, name);
    writeFileSync(path, Buffer.alloc(0));
    const progress = new BlobProgress(0, path);
    let written = 0;
    return {
      progress,
      source: { waitFor: (n) => progress.waitFor(n), done: progress.done, open: (s, e) => createReadStream(path, { start: s, end: e - 1 }) },
      append(b) {
        appendFileSync(path, b);
        written += b.length;
        progress.advance(written);
      },
    };
  }

  const since = (from: number, method: string) => proxy.requests.slice(from).filter((r) => r.method === method);

  it('PATCHes each chunk once it is written, never past the written bytes, then PUT ?digest=', async () => {
    const data = randomBytes(5 * CHUNK + 1000);
    const g = grow('a');
    const from = proxy.requests.length;
    const pushing = pushGrowingBlob(client, 'grow/a', g.source, 'blob a');
    g.append(data.subarray(0, 2 * CHUNK + 500));
    await until(() => since(from, 'PATCH').length === 2, 'two chunks');
    await new Promise((r) => setTimeout(r, 100));
    // The third chunk is not whole yet: nothing more may be sent.
    expect(since(from, 'PATCH')).toHaveLength(2);
    expect(since(from, 'PUT')).toHaveLength(0);
    // The writer runs ahead without waiting: the rest at once, then the digest.
    g.append(data.subarray(2 * CHUNK + 500));
    g.progress.finish();
    g.progress.resolve({ digest: sha256(data), size: data.length });
    expect(await pushing).toBe('uploaded');
    const ranges = since(from, 'PATCH').map((r) => r.contentRange);
    expect(ranges).toEqual([0, 1, 2, 3, 4].map((i) => `${i * CHUNK}-${(i + 1) * CHUNK - 1}`).concat([`${5 * CHUNK}-${data.length - 1}`]));
    expect(since(from, 'PUT')[0]!.path).toContain(`digest=${encodeURIComponent(sha256(data))}`);
    expect(since(from, 'HEAD')).toHaveLength(0);
    expect((await client.getBlob('grow/a', sha256(data))).equals(data)).toBe(true);
  });

  it('a failed build cancels the session and the upload fails with the build error', async () => {
    const g = grow('b');
    const from = proxy.requests.length;
    const pushing = pushGrowingBlob(client, 'grow/b', g.source, 'blob b');
    g.append(randomBytes(CHUNK + 10));
    await until(() => since(from, 'PATCH').length === 1, 'one chunk');
    g.progress.fail(new Error('the build broke'));
    const err = await pushing.then(() => undefined, (e: unknown) => e);
    expect(errorText(err)).toBe('the build broke');
    const deletes = since(from, 'DELETE');
    expect(deletes).toHaveLength(1);
    expect(deletes[0]!.path).toContain('/blobs/uploads/');
    expect(since(from, 'PUT')).toHaveLength(0);
  });

  it('a blob smaller than one chunk is not started (the caller pushes it whole)', async () => {
    const g = grow('c');
    const from = proxy.requests.length;
    const pushing = pushGrowingBlob(client, 'grow/c', g.source, 'blob c');
    const data = randomBytes(CHUNK - 1);
    g.append(data);
    g.progress.finish();
    g.progress.resolve({ digest: sha256(data), size: data.length });
    expect(await pushing).toBe('small');
    expect(proxy.requests.length).toBe(from);
  });

  it('a blob the build drops after its session opened is cancelled', async () => {
    const g = grow('d');
    const from = proxy.requests.length;
    const pushing = pushGrowingBlob(client, 'grow/d', g.source, 'blob d');
    g.append(randomBytes(CHUNK));
    await until(() => since(from, 'PATCH').length === 1, 'one chunk');
    g.progress.finish();
    g.progress.resolve(null);
    expect(await pushing).toBe('dropped');
    expect(since(from, 'DELETE')).toHaveLength(1);
  });
});
