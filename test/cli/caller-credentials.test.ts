/**
 * A mount uses the credentials of whoever runs `ondemand mount` (its flags, its environment, its Docker
 * config), never those of whoever started the daemon (issue 13): against a registry with Basic auth,
 * with the daemon started by hand in an environment different from the CLI's.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { cliBuilt, cliPath, leftovers, makeHarness, type Harness } from '../mount/harness.js';
import { buildImage, compareTrees, makeTree } from '../mount/images.js';
import { runCli } from './helpers.js';

const ready = needs('caller credentials', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'],
  [haveCommand('docker-registry'), 'docker-registry'], [haveCommand('htpasswd'), 'htpasswd']);

/** process.env without any registry credentials, with an empty HOME. */
function bareEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  for (const k of ['DOCKER_CONFIG', 'ONDEMAND_REGISTRY_USER', 'ONDEMAND_REGISTRY_PASSWORD']) delete env[k];
  return env;
}

/** Starts `ondemand daemon` for `h` in `env` (detached; h.cleanup() stops it by its pid file). */
async function startDaemonWith(h: Harness, env: NodeJS.ProcessEnv): Promise<void> {
  const logFd = openSync(join(h.runDir, 'daemon.log'), 'a');
  const child = spawn(process.execPath, [cliPath, 'daemon'], {
    cwd: '/', detached: true, stdio: ['ignore', logFd, logFd], env: { ...env, ONDEMAND_RUN_DIR: h.runDir, ONDEMAND_CACHE_DIR: h.cacheDir },
  });
  closeSync(logFd);
  child.unref();
  const deadline = Date.now() + 30_000;
  while ((await runCli(['status'], { env: { ...env, ONDEMAND_RUN_DIR: h.runDir, ONDEMAND_CACHE_DIR: h.cacheDir } })).code !== 0) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('the daemon did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!ready)('a mount uses its caller\'s registry credentials', () => {
  let reg: TestRegistry;
  let tmp: { dir: string; remove: () => void };
  let tree: string;
  let ref: string;
  let withConfig: NodeJS.ProcessEnv;
  let without: NodeJS.ProcessEnv;
  const harnesses: Harness[] = [];

  beforeAll(async () => {
    reg = await startRegistry({ auth: 'basic' });
    tmp = makeTempDir('caller-creds');
    tree = join(tmp.dir, 'tree');
    makeTree(tree, { seed: 'cc', bulkBytes: 64 * 1024 });
    const build = makeHarness('caller-creds-build');
    harnesses.push(build);
    const image = await buildImage(build, tree, join(tmp.dir, 'layout'));
    ref = `${reg.host}/creds/caller:v1`;
    const pushed = await runCli(['push', '--creds', `${reg.user}:${reg.password}`, image.ref, ref], { env: build.env });
    expect(pushed.code, pushed.stderr).toBe(0);
    // The caller's Docker config (a temp DOCKER_CONFIG) holds the login; the bare environment has none.
    const home = join(tmp.dir, 'home');
    mkdirSync(home);
    const dockerDir = join(tmp.dir, 'docker');
    mkdirSync(dockerDir);
    writeFileSync(join(dockerDir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${reg.user}:${reg.password}`).toString('base64') } } }), { mode: 0o600 });
    without = bareEnv(home);
    withConfig = { ...without, DOCKER_CONFIG: dockerDir };
  });
  afterAll(async () => {
    for (const h of harnesses) await h.cleanup();
    await reg?.stop();
    tmp?.remove();
  });

  it('the CLI has a Docker config, the daemon nothing: the mount works', async () => {
    const h = makeHarness('caller-creds-a');
    harnesses.push(h);
    await startDaemonWith(h, without);
    const mp = h.mountpoint('a');
    const env = { ...withConfig, ONDEMAND_RUN_DIR: h.runDir, ONDEMAND_CACHE_DIR: h.cacheDir };
    const r = await runCli(['mount', '--image', ref, mp], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(tree, mp)).toEqual([]);
    expect((await runCli(['umount', mp], { env })).code).toBe(0);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });

  it('the daemon has credentials in its environment, the CLI none: the mount uses none and fails with one auth line', async () => {
    const h = makeHarness('caller-creds-b');
    harnesses.push(h);
    await startDaemonWith(h, { ...without, ONDEMAND_REGISTRY_USER: reg.user, ONDEMAND_REGISTRY_PASSWORD: reg.password, DOCKER_CONFIG: join(tmp.dir, 'docker') });
    const mp = h.mountpoint('b');
    const r = await runCli(['mount', '--image', ref, mp], { env: { ...without, ONDEMAND_RUN_DIR: h.runDir, ONDEMAND_CACHE_DIR: h.cacheDir } });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^ondemand: registry \S+ requires a login/);
    expect(r.stderr).not.toContain(reg.password!);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });
});
