/**
 * The registry options every command that takes a registry reference shares: `--insecure`, `--creds`,
 * `--creds-file FILE|-` and `--platform`, against a real registry with Basic auth. `mount` goes through
 * the real daemon. Also: `mount --help` states that device nodes are refused unless --allow-devices.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { cliBuilt, leftovers, makeHarness, type Harness } from '../mount/harness.js';
import { buildImage, makeTree } from '../mount/images.js';
import { runCli } from './helpers.js';

const REGISTRY_COMMANDS = ['mount', 'inspect', 'check', 'export', 'pull', 'push', 'convert'];

describe.skipIf(!needs('CLI help', [cliBuilt(), 'a current build (make build)']))('one set of registry options', () => {
  it('every command that takes a registry reference lists the same options', async () => {
    for (const cmd of REGISTRY_COMMANDS) {
      const r = await runCli([cmd, '--help'], { env: process.env });
      expect(r.code, cmd).toBe(0);
      for (const opt of ['--insecure', '--creds ', '--creds-file', ...(cmd === 'push' ? [] : ['--platform'])]) {
        expect(r.stdout, `${cmd} --help lacks ${opt}`).toContain(opt);
      }
    }
  });

  it('mount --help says mounts are nodev, and offers --allow-devices', async () => {
    const r = await runCli(['mount', '--help'], { env: process.env });
    expect(r.stdout).toMatch(/nodev/);
    expect(r.stdout).toContain('--allow-devices');
  });

  it('--creds and --creds-file together are bad usage', async () => {
    const r = await runCli(['inspect', '--creds', 'a:b', '--creds-file', '/dev/null', '127.0.0.1:1/x:y'], { env: process.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ondemand: .*--creds.*--creds-file/);
  });
});

const ready = needs('registry options', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'],
  [haveCommand('docker-registry'), 'docker-registry'], [haveCommand('htpasswd'), 'htpasswd']);

describe.skipIf(!ready)('registry options against a registry with Basic auth', () => {
  let h: Harness;
  let reg: TestRegistry;
  let tmp: { dir: string; remove: () => void };
  let ref: string;
  let credsFile: string;
  let creds: string;

  beforeAll(async () => {
    h = makeHarness('cli-reg');
    reg = await startRegistry({ auth: 'basic' });
    tmp = makeTempDir('cli-reg');
    makeTree(join(tmp.dir, 'tree'), { seed: 'r', bulkBytes: 64 * 1024 });
    const image = await buildImage(h, join(tmp.dir, 'tree'), join(tmp.dir, 'layout'));
    creds = `${reg.user}:${reg.password}`;
    credsFile = join(tmp.dir, 'creds');
    writeFileSync(credsFile, creds + '\n', { mode: 0o600 });
    ref = `${reg.host}/cli/opts:v1`;
    const pushed = await runCli(['push', '--creds-file', credsFile, image.ref, ref], { env: h.env });
    expect(pushed.code, pushed.stderr).toBe(0);
  });
  afterAll(async () => {
    await h.cleanup();
    await reg?.stop();
    tmp?.remove();
  });

  it('inspect takes --creds, --creds-file FILE, --creds-file - (stdin), --insecure and --platform', async () => {
    const runs = [
      await runCli(['inspect', '--creds', creds, ref], { env: h.env }),
      await runCli(['inspect', '--creds-file', credsFile, '--insecure', '--platform', 'linux/amd64', ref], { env: h.env }),
      await runCli(['inspect', '--creds-file', '-', ref, '--json'], { env: h.env, stdin: creds + '\n' }),
    ];
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('cli/opts');
      expect(r.stdout + r.stderr).not.toContain(reg.password!);
    }
  });

  it('check and export take them too', async () => {
    const check = await runCli(['check', '--creds-file', credsFile, ref], { env: h.env });
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/^ok: /);
    const exp = await runCli(['export', '--creds-file', '-', ref, join(tmp.dir, 'exported')], { env: h.env, stdin: creds });
    expect(exp.code, exp.stderr).toBe(0);
    expect(exp.stdout).toMatch(/^exported /);
  });

  it('a wrong password from --creds-file is an auth failure that does not print it', async () => {
    const r = await runCli(['inspect', '--creds-file', '-', ref], { env: h.env, stdin: `${reg.user}:wrong-secret-xyz\n` });
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('wrong-secret-xyz');
  });

  it('mount takes --creds-file (the password goes to the daemon, not into its argv)', async () => {
    const mp = h.mountpoint('reg');
    const r = await runCli(['mount', '--image', ref, '--creds-file', credsFile, '--platform', 'linux/amd64', mp], { env: h.env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^mounted /);
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });
});
