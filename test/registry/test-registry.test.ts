/**
 * The test registries themselves (test/helpers/registry.ts), driven with plain fetch, so a failure in
 * the client tests can be told apart from a broken set-up.
 */
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { haveCommand, needs } from '../helpers/env.js';
import { startRegistry, type RegistryAuth, type TestRegistry } from '../helpers/registry.js';

const ready = needs('test registries', [haveCommand('docker-registry'), 'docker-registry'], [haveCommand('htpasswd'), 'htpasswd (apache2-utils)'], [haveCommand('openssl'), 'openssl']);

async function authHeader(reg: TestRegistry, scope: string): Promise<Record<string, string>> {
  if (reg.auth === 'none') return {};
  const basic = 'Basic ' + Buffer.from(`${reg.user}:${reg.password}`).toString('base64');
  if (reg.auth === 'basic') return { authorization: basic };
  const res = await fetch(`${reg.token!.url}?service=${reg.token!.service}&scope=${encodeURIComponent(scope)}`, { headers: { authorization: basic } });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { token: string };
  return { authorization: `Bearer ${body.token}` };
}

describe.skipIf(!ready)('test registry set-ups', () => {
  const started: TestRegistry[] = [];
  afterAll(async () => {
    for (const r of started) await r.stop();
  });

  for (const auth of ['none', 'basic', 'token'] as RegistryAuth[]) {
    it(`${auth}: refuses anonymous access when it should, stores and serves a blob with ranges`, async () => {
      const reg = await startRegistry({ auth });
      started.push(reg);
      const anon = await fetch(`${reg.url}/v2/`);
      await anon.arrayBuffer();
      expect(anon.status).toBe(auth === 'none' ? 200 : 401);
      if (auth === 'token') expect(anon.headers.get('www-authenticate')).toContain(`realm="${reg.token!.url}"`);

      const h = await authHeader(reg, 'repository:t/blob:pull,push');
      const data = Buffer.from('hello registry '.repeat(1000));
      const digest = 'sha256:' + createHash('sha256').update(data).digest('hex');
      const post = await fetch(`${reg.url}/v2/t/blob/blobs/uploads/`, { method: 'POST', headers: h });
      await post.arrayBuffer();
      expect(post.status).toBe(202);
      const loc = new URL(post.headers.get('location')!, reg.url);
      loc.searchParams.set('digest', digest);
      const put = await fetch(loc, { method: 'PUT', headers: { ...h, 'content-type': 'application/octet-stream' }, body: data });
      await put.arrayBuffer();
      expect(put.status).toBe(201);
      const get = await fetch(`${reg.url}/v2/t/blob/blobs/${digest}`, { headers: { ...h, range: 'bytes=6-13' } });
      expect(get.status).toBe(206);
      expect(Buffer.from(await get.arrayBuffer()).toString()).toBe('registry');
      await reg.stop();
      await reg.stop(); // idempotent
    });
  }

  it('token: wrong password is refused by the token server', async () => {
    const reg = await startRegistry({ auth: 'token' });
    started.push(reg);
    const res = await fetch(`${reg.token!.url}?service=x&scope=repository:a:pull`, { headers: { authorization: 'Basic ' + Buffer.from('tester:nope').toString('base64') } });
    await res.arrayBuffer();
    expect(res.status).toBe(401);
    expect(reg.token!.refused()).toBe(1);
  });
});
