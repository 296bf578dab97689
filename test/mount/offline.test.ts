/**
 * Mounts are pinned to what they mounted (issue 13): manifests, TOCs and bootstraps are kept in the
 * cache, so an image mounted once mounts again — and re-attaches after a worker restart — with the
 * registry down: by digest always, by tag from the last resolution, with a warning. Requests are
 * counted with a fault proxy in front of a real registry. A 404 or an auth failure is never answered
 * from the cache.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { cliBuilt, leftovers, makeHarness, type Harness } from './harness.js';
import { buildImage, cliHas, compareTrees, makeTree, mountStatus, pushLayout } from './images.js';

const ready = needs('mount with the registry down', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'], [cliHas('build'), 'ondemand build'],
  [cliHas('push'), 'ondemand push'], [haveCommand('docker-registry'), 'docker-registry']);

interface StatusJson { daemon: { workerPid: number; workerRestarts: number }; mounts: { mountpoint: string; prefetch?: string }[] }

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(!ready)('mounting again without the registry', () => {
  let h: Harness;
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let src: { dir: string; remove: () => void };
  let tree: string;
  let byTag: string;
  let byDigest: string;
  let mp: string;
  let mp2: string;

  const status = async (): Promise<StatusJson> => JSON.parse(await h.ok('status', '--json')) as StatusJson;
  const since = (n: number): string[] => proxy.requests.slice(n).map((r) => `${r.method} ${r.path}${r.range ? ` ${r.range}` : ''} ${r.status ?? ''}`);
  const daemonLog = (): string[] => readFileSync(join(h.runDir, 'daemon.log'), 'utf8').split('\n').filter(Boolean);

  beforeAll(async () => {
    h = makeHarness('offline');
    src = makeTempDir('offline-src');
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.url);
    tree = join(src.dir, 'tree');
    makeTree(tree, { seed: 'off', bulkBytes: 2 * 1024 * 1024 });
    const image = await buildImage(h, tree, join(src.dir, 'layout'));
    await pushLayout(h, image.ref, `${reg.host}/ondemand/offline:v1`);
    const head = await fetch(`${reg.url}/v2/ondemand/offline/manifests/v1`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' } });
    const digest = head.headers.get('docker-content-digest');
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    byTag = `${proxy.host}/ondemand/offline:v1`;
    byDigest = `${proxy.host}/ondemand/offline@${digest}`;
    mp = h.mountpoint('a');
    mp2 = h.mountpoint('b');
  });
  afterAll(async () => {
    await h?.cleanup();
    await proxy?.stop().catch(() => undefined);
    await reg?.stop();
    src?.remove();
  });

  it('a remount of an image whose blobs are complete sends no request to the registry (by digest); by tag only the tag is asked', async () => {
    await h.ok('mount', '--prefetch', '--image', byTag, mp);
    await until('prefetch done', 60_000, async () => ((await mountStatus(h, mp)).prefetch === 'done' ? true : undefined));
    await h.ok('umount', mp);

    let n = proxy.requests.length;
    await h.ok('mount', '--image', byDigest, mp);
    expect(compareTrees(tree, mp)).toEqual([]);
    await h.ok('umount', mp);
    expect(since(n)).toEqual([]);

    n = proxy.requests.length;
    await h.ok('mount', '--image', byTag, mp);
    expect(compareTrees(tree, mp)).toEqual([]);
    await h.ok('umount', mp);
    expect(since(n)).toEqual(['GET /v2/ondemand/offline/manifests/v1 200']);
  });

  it('the metadata is in the cache: private files, listed by cache ls', async () => {
    for (const folder of ['manifests', 'tocs', 'tags', 'bootstraps']) {
      expect(statSync(join(h.cacheDir, folder)).mode & 0o777, folder).toBe(0o700);
      const files = readdirSync(join(h.cacheDir, folder));
      expect(files.length, folder).toBeGreaterThan(0);
      for (const f of files) expect(statSync(join(h.cacheDir, folder, f)).mode & 0o777, `${folder}/${f}`).toBe(0o600);
    }
    const ls = await h.ok('cache', 'ls');
    expect(ls).toMatch(/1 manifests, 1 TOCs, 1 tags/);
    expect(ls).toContain(byTag);
  });

  it('a tag the registry says is gone (404), or refused access, is never answered from the cache', async () => {
    proxy.arm({ mode: 'status', status: 404, match: /^GET \/v2\/.+\/manifests\/v1$/, times: Infinity, body: '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}' });
    try {
      const gone = await h.cli('mount', '--image', byTag, mp);
      expect(gone.code).not.toBe(0);
      expect(gone.stderr).toMatch(/not found/);
      proxy.arm({ mode: 'status', status: 403, match: /^GET \/v2\/.+\/manifests\/v1$/, times: Infinity, body: '{"errors":[{"code":"DENIED","message":"denied"}]}' });
      const denied = await h.cli('mount', '--image', byTag, mp);
      expect(denied.code).not.toBe(0);
      expect(denied.stderr).toMatch(/access denied/);
      expect(denied.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      proxy.disarm();
    }
  });

  it('registry answering 503: the tag comes from its last resolution, and the CLI and the log say so', async () => {
    proxy.arm({ mode: 'status', status: 503, match: /./, times: Infinity });
    try {
      const r = await h.cli('mount', '--image', byTag, mp);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(new RegExp(`^ondemand: warning: registry unreachable: using the manifest cached for ${byTag.replace(/[.]/g, '\\.')} at \\d{4}-\\d\\d-\\d\\dT`, 'm'));
      expect(compareTrees(tree, mp)).toEqual([]);
      await h.ok('umount', mp);
    } finally {
      proxy.disarm();
    }
    const warned = daemonLog().filter((l) => l.includes('registry unreachable: using the manifest cached for'));
    expect(warned.length).toBeGreaterThan(0);
    expect(JSON.parse(warned[0]!)).toMatchObject({ level: 40, image: byTag });
  });

  it('registry down (connection refused): mounts by digest and by tag, and both re-attach after a worker restart', async () => {
    await proxy.stop();
    const d = await h.cli('mount', '--image', byDigest, mp);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stderr).toBe('');
    const t = await h.cli('mount', '--image', byTag, mp2);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stderr).toMatch(/registry unreachable: using the manifest cached for/);
    expect(compareTrees(tree, mp)).toEqual([]);

    const before = await status();
    process.kill(before.daemon.workerPid, 'SIGKILL');
    const after = await until('a new worker with both mounts', 60_000, async () => {
      const s = await status();
      return s.daemon.workerRestarts > before.daemon.workerRestarts && s.mounts.length === 2 ? s : undefined;
    });
    expect(after.mounts.map((m) => m.mountpoint).sort()).toEqual([mp, mp2].sort());
    expect(compareTrees(tree, mp)).toEqual([]);
    expect(compareTrees(tree, mp2)).toEqual([]);
    expect(daemonLog().some((l) => l.includes('cannot re-attach'))).toBe(false);

    await h.ok('umount', mp);
    await h.ok('umount', mp2);
    expect(leftovers(h, [mp, mp2])).toEqual({ mounts: [], loops: [] });
  });
});
