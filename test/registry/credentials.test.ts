/**
 * Where credentials come from (--creds, env, Docker config auths, credHelpers and credsStore through a
 * fake docker-credential-* helper on PATH), and that they log in to the real htpasswd registry.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findCredentials, normaliseRegistryKey, runCredentialHelper } from '../../src/registry/credentials.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pushBlob } from '../../src/registry/upload.js';
import { AuthError, UsageError } from '../../src/util/errors.js';
import { haveCommand, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeBlob } from './fixtures.js';

describe('credential sources', () => {
  let tmp: { dir: string; remove: () => void };
  let bin: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(() => {
    tmp = makeTempDir('creds');
    bin = join(tmp.dir, 'bin');
    mkdirSync(bin);
    // A helper in the docker-credential protocol: server URL on stdin, JSON on stdout.
    const helper = `#!/bin/sh
[ "$1" = get ] || exit 3
read server
echo "$server" >> "${tmp.dir}/helper.log"
case "$server" in
  helped.example:5000) echo '{"ServerURL":"helped.example:5000","Username":"helper-user","Secret":"helper-secret"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"hub-user","Secret":"hub-secret"}' ;;
  tokened.example) echo '{"ServerURL":"tokened.example","Username":"<token>","Secret":"refresh-tok"}' ;;
  broken.example) echo 'secret-looking stderr' >&2; exit 7 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`;
    writeFileSync(join(bin, 'docker-credential-fake'), helper);
    chmodSync(join(bin, 'docker-credential-fake'), 0o755);
    env = { PATH: `${bin}:${process.env.PATH}`, HOME: tmp.dir };
    mkdirSync(join(tmp.dir, '.docker'));
    writeFileSync(
      join(tmp.dir, '.docker', 'config.json'),
      JSON.stringify({
        auths: {
          'https://plain.example:5000/v1/': { auth: Buffer.from('alice:pa:ss').toString('base64') },
          'split.example': { username: 'bob', password: 'bobpw' },
          'idtoken.example': { identitytoken: 'id-tok' },
          'https://index.docker.io/v1/': { auth: Buffer.from('hubconfig:x').toString('base64') },
        },
        credHelpers: { 'helped.example:5000': 'fake', 'broken.example': 'fake', 'tokened.example': 'fake' },
        credsStore: 'fake',
      }),
    );
  });
  afterAll(() => tmp.remove());

  it('--creds wins, then the environment, then the Docker config', async () => {
    expect(await findCredentials('plain.example:5000', { creds: 'u:p:w', env })).toEqual({ kind: 'password', username: 'u', password: 'p:w' });
    const withEnv = { ...env, ONDEMAND_REGISTRY_USER: 'envu', ONDEMAND_REGISTRY_PASSWORD: 'envp' };
    expect(await findCredentials('plain.example:5000', { env: withEnv })).toEqual({ kind: 'password', username: 'envu', password: 'envp' });
    expect(await findCredentials('plain.example:5000', { env })).toEqual({ kind: 'password', username: 'alice', password: 'pa:ss' });
    expect(await findCredentials('split.example', { env })).toEqual({ kind: 'password', username: 'bob', password: 'bobpw' });
    expect(await findCredentials('idtoken.example', { env })).toEqual({ kind: 'identity-token', username: '', identityToken: 'id-tok' });
    await expect(findCredentials('x', { creds: 'nocolon', env })).rejects.toBeInstanceOf(UsageError);
  });

  it('credHelpers and credsStore run docker-credential-NAME get', async () => {
    expect(await findCredentials('helped.example:5000', { env })).toEqual({ kind: 'password', username: 'helper-user', password: 'helper-secret' });
    expect(await findCredentials('tokened.example', { env })).toEqual({ kind: 'identity-token', username: '', identityToken: 'refresh-tok' });
    // docker.io: auths has an entry but credsStore is only a fallback, so auths wins.
    expect(await findCredentials('docker.io', { env })).toEqual({ kind: 'password', username: 'hubconfig', password: 'x' });
    // Unknown to auths: the credsStore answers "not found" → anonymous.
    expect(await findCredentials('nowhere.example', { env })).toBeUndefined();
    const err = await findCredentials('broken.example', { env }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect(String((err as Error).message)).toMatch(/docker-credential-fake exited with status 7/);
    expect(String((err as Error).message)).not.toContain('secret-looking');
    await expect(runCredentialHelper('missing-helper', 'x', env)).rejects.toThrow(/docker-credential-missing-helper not found on PATH/);
    await expect(runCredentialHelper('../evil', 'x', env)).rejects.toThrow(/invalid credential helper name/);
  });

  it('normalises registry keys of Docker configs', () => {
    expect(normaliseRegistryKey('https://index.docker.io/v1/')).toBe('docker.io');
    expect(normaliseRegistryKey('registry-1.docker.io')).toBe('docker.io');
    expect(normaliseRegistryKey('http://Host.Example:5000/v2/')).toBe('host.example:5000');
  });

  it('a config that is not JSON is an AuthError naming the file', async () => {
    const bad = join(tmp.dir, 'bad.json');
    writeFileSync(bad, '{ nope');
    await expect(findCredentials('x', { env: {}, dockerConfig: bad })).rejects.toThrow(/bad\.json is not valid JSON/);
  });
});

const ready = needs('credentials against a registry', [haveCommand('docker-registry'), 'docker-registry'], [haveCommand('htpasswd'), 'htpasswd']);

describe.skipIf(!ready)('credentials log in to a real registry', () => {
  let reg: TestRegistry;
  let tmp: { dir: string; remove: () => void };
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'basic' });
    tmp = makeTempDir('creds-reg');
  });
  afterAll(async () => {
    await reg?.stop();
    tmp?.remove();
  });

  it('from a Docker config auths entry and from a credential helper', async () => {
    const blob = makeBlob(4096);
    const cfg = join(tmp.dir, 'auths.json');
    writeFileSync(cfg, JSON.stringify({ auths: { [`http://${reg.host}`]: { auth: Buffer.from(`${reg.user}:${reg.password}`).toString('base64') } } }));
    const a = new RegistryClient({ registry: reg.host, credentials: { env: {}, dockerConfig: cfg } });
    expect(await pushBlob(a, 'c/one', blob.digest, blob.stored)).toBe('uploaded');
    await a.close();

    const bin = join(tmp.dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'docker-credential-test'), `#!/bin/sh\nread s\nprintf '{"ServerURL":"%s","Username":"${reg.user}","Secret":"${reg.password}"}' "$s"\n`);
    chmodSync(join(bin, 'docker-credential-test'), 0o755);
    const cfg2 = join(tmp.dir, 'helper.json');
    writeFileSync(cfg2, JSON.stringify({ credHelpers: { [reg.host]: 'test' } }));
    const b = new RegistryClient({ registry: reg.host, credentials: { env: { PATH: `${bin}:${process.env.PATH}` }, dockerConfig: cfg2 } });
    expect((await b.getBlob('c/one', blob.digest)).equals(blob.stored)).toBe(true);
    await b.close();
  });
});
