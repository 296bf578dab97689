/**
 * Faults between the client and a real registry (htpasswd auth), injected by test/helpers/fault-proxy:
 * every read returns the right bytes (resumed from the last good byte, retried with back-off,
 * Retry-After honoured) or fails with one clear error within its deadline. Redirects to storage on
 * another host carry no credentials. Mirrors are tried in order with fallback to the registry.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { RegistryFetcher } from '../../src/fetch/registry.js';
import { pushBlob } from '../../src/registry/upload.js';
import { FetchError, IntegrityError, OndemandError, errorText } from '../../src/util/errors.js';
import { haveCommand, makeTempDir, needs } from '../helpers/env.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultMode, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeBlob, type FixtureBlob } from './fixtures.js';

const ready = needs('registry faults', [haveCommand('docker-registry'), 'docker-registry'], [haveCommand('htpasswd'), 'htpasswd']);

const REPO = 'fault/test';

describe.skipIf(!ready)('registry faults', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let blob: FixtureBlob;
  const clients: RegistryClient[] = [];

  function client(extra: Partial<RegistryClientOptions> = {}): RegistryClient {
    const c = new RegistryClient({
      registry: proxy.host,
      credentials: { creds: `${reg.user}:${reg.password}`, env: {} },
      timeouts: { connectMs: 1000, headersMs: 700, bodyIdleMs: 700 },
      retry: { attempts: 8, baseDelayMs: 30, maxDelayMs: 400 },
      deadlineMs: 10_000,
      ...extra,
    });
    clients.push(c);
    return c;
  }

  beforeAll(async () => {
    reg = await startRegistry({ auth: 'basic' });
    proxy = await startFaultProxy(reg.url);
    blob = makeBlob(2 * 1024 * 1024);
    const direct = new RegistryClient({ registry: reg.host, credentials: { creds: `${reg.user}:${reg.password}`, env: {} } });
    await pushBlob(direct, REPO, blob.digest, blob.stored);
    await direct.close();
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    await proxy?.stop();
    await reg?.stop();
  });

  const span = { offset: 100_000, length: 1_500_000 };
  const expected = (): Buffer => blob.stored.subarray(span.offset, span.offset + span.length);

  const recoverable: { mode: FaultMode; times: number; status?: number; retryAfter?: string }[] = [
    { mode: 'reset', times: 3 },
    { mode: 'truncate', times: 3 },
    { mode: 'stall-body', times: 2 },
    { mode: 'stall-headers', times: 2 },
    { mode: 'status', status: 500, times: 3 },
    { mode: 'status', status: 503, times: 2 },
    { mode: 'status', status: 429, times: 2 },
  ];

  for (const f of recoverable) {
    it(`${f.mode}${f.status ? ` ${f.status}` : ''} x${f.times}: the range still arrives byte-exact`, async () => {
      const c = client();
      proxy.requests.length = 0;
      proxy.arm({ ...f, afterBytes: 300_000 });
      const got = await c.getBlobRange(REPO, blob.digest, span);
      expect(proxy.remaining()).toBe(0);
      expect(got.equals(expected())).toBe(true);
      const gets = proxy.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
      if (['reset', 'truncate', 'stall-body'].includes(f.mode)) {
        // Resumed from the last good byte, not from the start of the range.
        const later = gets.slice(1).map((r) => Number(/bytes=([0-9]+)-/.exec(r.range ?? '')?.[1]));
        expect(later.some((start) => start > span.offset)).toBe(true);
      }
    });
  }

  it('429 with Retry-After: 1 waits at least that long', async () => {
    const c = client();
    proxy.arm({ mode: 'status', status: 429, retryAfter: '1', times: 1 });
    const t0 = Date.now();
    const got = await c.getBlobRange(REPO, blob.digest, span);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(got.equals(expected())).toBe(true);
  });

  it('wrong bytes in a whole-blob read are caught by the digest and fetched again', async () => {
    const f = new RegistryFetcher(client(), REPO);
    proxy.arm({ mode: 'corrupt', afterBytes: 12345, times: 1 });
    expect((await f.fetchBlob(blob.digest)).equals(blob.stored)).toBe(true);
    proxy.arm({ mode: 'corrupt', afterBytes: 777, times: Infinity });
    const err = await f.fetchBlob(blob.digest).catch((e: unknown) => e);
    proxy.disarm();
    expect(err).toBeInstanceOf(IntegrityError);
    expect(errorText(err)).toContain(blob.digest);
  });

  it('a stream of a whole blob resumes across resets and is verified', async () => {
    const c = client();
    proxy.arm({ mode: 'reset', afterBytes: 700_000, times: 2 });
    const chunks: Buffer[] = [];
    for await (const chunk of c.openBlobStream(REPO, blob.digest)) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(blob.stored)).toBe(true);
  });

  const permanent: { mode: FaultMode; status?: number; pattern: RegExp }[] = [
    { mode: 'stall-headers', pattern: /timed out after 3 s|deadline/ },
    { mode: 'stall-body', pattern: /timed out after 3 s|deadline|failed after/ },
    { mode: 'reset', pattern: /failed after 8 attempts|deadline/ },
    { mode: 'status', status: 503, pattern: /failed after 8 attempts: .*HTTP 503|deadline/ },
  ];
  for (const f of permanent) {
    it(`permanent ${f.mode}${f.status ? ` ${f.status}` : ''}: one clear FetchError within the deadline`, async () => {
      const c = client({ deadlineMs: 3000 });
      proxy.arm({ ...f, times: Infinity, afterBytes: 1000 });
      const t0 = Date.now();
      const err = await c.getBlobRange(REPO, blob.digest, span).catch((e: unknown) => e);
      const took = Date.now() - t0;
      proxy.disarm();
      expect(err).toBeInstanceOf(FetchError);
      const text = errorText(err);
      expect(text).toMatch(f.pattern);
      expect(text).toContain(blob.digest);
      expect(text).not.toContain(reg.password!);
      expect(text.includes('\n')).toBe(false);
      expect(took).toBeLessThan(3000 + 1500);
    });
  }

  it('random faults: every read is either byte-exact or a clear error before its deadline', async () => {
    const c = client({ deadlineMs: 4000 });
    const modes: FaultMode[] = ['reset', 'truncate', 'stall-body', 'stall-headers', 'status', 'corrupt'];
    let ok = 0;
    let failed = 0;
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 24; i++) {
      const mode = modes[rnd(modes.length)]!;
      proxy.arm({ mode, status: [500, 502, 503, 429][rnd(4)], times: 1 + rnd(4), afterBytes: rnd(200_000) });
      const offset = rnd(1_000_000);
      const length = 1 + rnd(600_000);
      const t0 = Date.now();
      try {
        if (mode === 'corrupt') {
          // Ranges cannot be verified by the client (the cache checks frames against the TOC); whole blobs are.
          const whole = await new RegistryFetcher(c, REPO).fetchBlob(blob.digest);
          expect(whole.equals(blob.stored)).toBe(true);
        } else {
          const got = await c.getBlobRange(REPO, blob.digest, { offset, length });
          expect(got.equals(blob.stored.subarray(offset, offset + length))).toBe(true);
        }
        ok++;
      } catch (err) {
        expect(err).toBeInstanceOf(OndemandError);
        expect(errorText(err)).not.toContain(reg.password!);
        failed++;
      }
      expect(Date.now() - t0).toBeLessThan(4000 + 1500);
      proxy.disarm();
    }
    expect(ok + failed).toBe(24);
    expect(ok).toBeGreaterThan(12);
  });

  it('a redirect to storage on another host is followed without credentials', async () => {
    const seen: (string | undefined)[] = [];
    const storage: Server = createServer((req, res) => {
      seen.push(req.headers.authorization);
      const m = /bytes=([0-9]+)-([0-9]+)/.exec(req.headers.range ?? '');
      if (m) {
        const [a, b] = [Number(m[1]), Number(m[2])];
        res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${blob.stored.length}`, 'content-length': String(b - a + 1) });
        res.end(blob.stored.subarray(a, b + 1));
      } else {
        res.writeHead(200, { 'content-length': String(blob.stored.length) }).end(blob.stored);
      }
    });
    await new Promise<void>((r) => storage.listen(0, '127.0.0.1', () => r()));
    const port = (storage.address() as { port: number }).port;
    try {
      const c = client();
      // Warm the auth scheme so the blob request itself carries Authorization.
      await c.blobSize(REPO, blob.digest);
      proxy.requests.length = 0;
      proxy.arm({ mode: 'redirect', location: `http://localhost:${port}`, times: 1 });
      const got = await c.getBlobRange(REPO, blob.digest, span);
      expect(got.equals(expected())).toBe(true);
      expect(proxy.requests.find((r) => r.faulted === 'redirect')?.authorized).toBe(true);
      expect(seen).toEqual([undefined]);
    } finally {
      storage.closeAllConnections();
      await new Promise<void>((r) => storage.close(() => r()));
    }
  });

  it('mirrors: a dead one and one without the blob are skipped, a working one is used, the registry is the fallback', async () => {
    const mirror = await startFaultProxy(reg.url);
    const tmp = makeTempDir('mirror-config');
    try {
      // Mirrors get no --creds (those are the registry's); their credentials come from the Docker config.
      const config = join(tmp.dir, 'config.json');
      const auth = Buffer.from(`${reg.user}:${reg.password}`).toString('base64');
      writeFileSync(config, JSON.stringify({ auths: { [mirror.host]: { auth } } }));
      // Port 9 on loopback: nothing listens (connection refused).
      const c = client({ registry: proxy.host, mirrors: ['127.0.0.1:9', mirror.url], credentials: { creds: `${reg.user}:${reg.password}`, env: {}, dockerConfig: config } });
      const got = await c.getBlobRange(REPO, blob.digest, { offset: 0, length: 1000 });
      expect(got.equals(blob.stored.subarray(0, 1000))).toBe(true);
      expect(mirror.requests.some((r) => r.method === 'GET' && r.status === 206)).toBe(true);
      mirror.arm({ mode: 'status', status: 404, times: Infinity, match: /blobs/ });
      proxy.requests.length = 0;
      const again = await c.getBlobRange(REPO, blob.digest, { offset: 5000, length: 1000 });
      expect(again.equals(blob.stored.subarray(5000, 6000))).toBe(true);
      expect(proxy.requests.some((r) => r.method === 'GET' && r.status === 206)).toBe(true);
    } finally {
      tmp.remove();
      await mirror.stop();
    }
  });
});
