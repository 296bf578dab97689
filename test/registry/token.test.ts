/**
 * Bearer tokens against the real registry and the test's token server: cached per scope, renewed
 * before expiry, re-acquired when the registry refuses an expired one (also in the middle of a
 * resumed blob transfer); wrong passwords and anonymous pushes fail with one clear line.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../src/registry/client.js';
import { pushBlob } from '../../src/registry/upload.js';
import { AuthError, errorText } from '../../src/util/errors.js';
import { haveCommand, makeTempDir, needs } from '../helpers/env.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRegistry, type TestRegistry, type TokenServerOptions } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeBlob, type FixtureBlob } from './fixtures.js';

const ready = needs('registry tokens', [haveCommand('docker-registry'), 'docker-registry'], [haveCommand('openssl'), 'openssl']);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!ready)('registry token auth', () => {
  const regs: TestRegistry[] = [];
  const proxies: FaultProxy[] = [];
  const clients: RegistryClient[] = [];
  let blob: FixtureBlob;

  async function setup(token: TokenServerOptions, now?: () => number): Promise<{ reg: TestRegistry; proxy: FaultProxy; client: RegistryClient }> {
    const reg = await startRegistry({ auth: 'token', token });
    regs.push(reg);
    const proxy = await startFaultProxy(reg.url);
    proxies.push(proxy);
    const client = new RegistryClient({
      registry: proxy.host,
      credentials: { creds: `${reg.user}:${reg.password}`, env: {} },
      timeouts: { connectMs: 1000, headersMs: 5000, bodyIdleMs: 5000 },
      ...(now !== undefined ? { now } : {}),
    });
    clients.push(client);
    await pushBlob(client, 'tok/repo', blob.digest, blob.stored);
    return { reg, proxy, client };
  }

  beforeAll(() => {
    blob = makeBlob(2 * 1024 * 1024);
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    for (const p of proxies) await p.stop();
    for (const r of regs) await r.stop();
  });

  it('caches one token per scope set', async () => {
    const { reg, proxy } = await setup({ anonymousPull: true });
    const client = new RegistryClient({ registry: proxy.host, credentials: { creds: `${reg.user}:${reg.password}`, env: {} } });
    clients.push(client);
    const afterPush = reg.token!.issued();
    proxy.requests.length = 0;
    await Promise.all(Array.from({ length: 20 }, (_, i) => client.getBlobRange('tok/repo', blob.digest, { offset: i * 1000, length: 1000 })));
    expect(reg.token!.issued()).toBe(afterPush + 1); // one pull token for all 20 concurrent reads
    expect(proxy.requests.filter((r) => r.status === 401).length).toBeLessThanOrEqual(20);
    proxy.requests.length = 0;
    await client.getBlobRange('tok/repo', blob.digest, { offset: 0, length: 10 });
    expect(proxy.requests.filter((r) => r.status === 401)).toHaveLength(0);
    expect(reg.token!.issued()).toBe(afterPush + 1);

    // Anonymous: the token server grants pull only, so reads work and pushes are refused clearly.
    const anon = new RegistryClient({ registry: proxy.host, credentials: { env: {}, dockerConfig: '/nonexistent' } });
    clients.push(anon);
    expect((await anon.getBlobRange('tok/repo', blob.digest, { offset: 5, length: 5 })).equals(blob.stored.subarray(5, 10))).toBe(true);
    const other = makeBlob(4096);
    const err = await pushBlob(anon, 'tok/repo', other.digest, other.stored).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect(errorText(err)).toMatch(/denied anonymous access for repository:tok\/repo:pull,push/);
  });

  it('wrong password: one AuthError line naming the user, never the password', async () => {
    const { reg, proxy } = await setup({});
    const secret = `S3cret-${randomBytes(8).toString('hex')}`;
    const bad = new RegistryClient({ registry: proxy.host, credentials: { creds: `${reg.user}:${secret}`, env: {} } });
    clients.push(bad);
    const err = await bad.getManifest('tok/repo', 'latest').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    const text = errorText(err);
    expect(text).toBe(`token server for registry ${proxy.host} rejected the credentials of user "${reg.user}"`);
    expect(text).not.toContain(secret);
    expect(reg.token!.refused()).toBe(1);
  });

  it('renews a token shortly before it expires, without a 401', async () => {
    // The client's clock jumps past the renewal point (3 s - 10 %); the registry still accepts the token.
    let skew = 0;
    const { reg, client, proxy } = await setup({ lifetimeSeconds: 3 }, () => Date.now() + skew);
    await client.getBlobRange('tok/repo', blob.digest, { offset: 0, length: 100 });
    const before = reg.token!.issued();
    skew = 2800;
    proxy.requests.length = 0;
    await client.getBlobRange('tok/repo', blob.digest, { offset: 100, length: 100 });
    expect(reg.token!.issued()).toBe(before + 1);
    expect(proxy.requests.filter((r) => r.status === 401)).toHaveLength(0);
  });

  it('re-acquires a token the registry refuses as expired, also when resuming a broken transfer', async () => {
    // The token server says 300 s, the registry stops accepting after 2 s: only a 401 tells the client.
    const { reg, client, proxy } = await setup({ lifetimeSeconds: 2, advertisedExpiresIn: 300 });
    await client.getBlobRange('tok/repo', blob.digest, { offset: 0, length: 100 });
    const before = reg.token!.issued();
    await sleep(2600);
    proxy.requests.length = 0;
    const a = await client.getBlobRange('tok/repo', blob.digest, { offset: 1000, length: 1000 });
    expect(a.equals(blob.stored.subarray(1000, 2000))).toBe(true);
    expect(reg.token!.issued()).toBe(before + 1);
    expect(proxy.requests.filter((r) => r.status === 401)).toHaveLength(1);

    // Mid-transfer: 300 KB arrive, the connection hangs past the token's life and breaks; the resumed
    // request meets a 401, gets a new token and continues from the last good byte.
    proxy.requests.length = 0;
    proxy.arm({ mode: 'stall-body', afterBytes: 300_000, holdMs: 2600, times: 1 });
    const t = reg.token!.issued();
    const whole = await client.getBlobRange('tok/repo', blob.digest, { offset: 0, length: blob.stored.length });
    expect(whole.equals(blob.stored)).toBe(true);
    expect(reg.token!.issued()).toBe(t + 1);
    const gets = proxy.requests.filter((r) => r.method === 'GET');
    expect(gets.map((r) => r.status)).toEqual([206, 401, 206]);
    expect(gets[2]!.range).toMatch(/^bytes=(29|30)[0-9]{4}-/);
  });

  it('an identity token from the Docker config is exchanged at the realm (OAuth2 refresh-token grant)', async () => {
    const { reg, proxy } = await setup({});
    const tmp = makeTempDir('idtoken');
    try {
      const good = join(tmp.dir, 'good.json');
      writeFileSync(good, JSON.stringify({ auths: { [proxy.host]: { identitytoken: reg.password } } }));
      const c = new RegistryClient({ registry: proxy.host, credentials: { env: {}, dockerConfig: good } });
      clients.push(c);
      expect((await c.getBlobRange('tok/repo', blob.digest, { offset: 7, length: 7 })).equals(blob.stored.subarray(7, 14))).toBe(true);
      const bad = join(tmp.dir, 'bad.json');
      writeFileSync(bad, JSON.stringify({ auths: { [proxy.host]: { identitytoken: 'expired-refresh-token' } } }));
      const d = new RegistryClient({ registry: proxy.host, credentials: { env: {}, dockerConfig: bad } });
      clients.push(d);
      const err = await d.getBlobRange('tok/repo', blob.digest, { offset: 0, length: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuthError);
      expect(errorText(err)).toBe(`token server for registry ${proxy.host} rejected the identity token`);
    } finally {
      tmp.remove();
    }
  });
});
