/**
 * Mounting from a real registry (Debian docker-registry on 127.0.0.1): lazy reads over HTTP range
 * requests, and the registry hung or stopped mid-use — reads of data not yet cached fail with EIO
 * within the fetch deadline ($ONDEMAND_FETCH_TIMEOUT); they never hang and never return zeros.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { cliBuilt, leftovers, makeHarness, type Harness } from './harness.js';
import { buildImage, cliHas, makeTree, mountStatus, pushLayout, sha, type TestImage } from './images.js';

const ready = needs('mount from a registry', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'], [cliHas('build'), 'ondemand build (issue 2)'],
  [haveCommand('docker-registry'), 'docker-registry'], [cliHas('push') || haveCommand('skopeo'), 'ondemand push (issue 4) or skopeo']);

function readWithin(path: string, timeoutMs: number): Promise<{ sha?: string; error?: string; ms: number; timedOut: boolean }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile('sha256sum', [path], { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const ms = Date.now() - t0;
      if (err) resolve({ error: stderr.trim() || err.message, ms, timedOut: (err as { killed?: boolean }).killed === true });
      else resolve({ sha: stdout.split(' ')[0]!, ms, timedOut: false });
    });
  });
}

const FETCH_TIMEOUT_S = 6;

describe.skipIf(!ready)('mount from a registry', () => {
  let h: Harness;
  let reg: TestRegistry;
  let src: { dir: string; remove: () => void };
  let image: TestImage;
  let remote: string;
  let mp: string;

  beforeAll(async () => {
    h = makeHarness('registry', { ONDEMAND_FETCH_TIMEOUT: String(FETCH_TIMEOUT_S) });
    src = makeTempDir('registry-src');
    reg = await startRegistry();
    makeTree(join(src.dir, 'tree'), { seed: 'r' });
    image = await buildImage(h, join(src.dir, 'tree'), join(src.dir, 'layout'));
    remote = `${reg.host}/ondemand/test:latest`;
    await pushLayout(h, image.ref, remote);
    mp = h.mountpoint('reg');
  });
  afterAll(async () => {
    await h.cleanup();
    await reg?.stop();
    src.remove();
  });

  it('mounts lazily from the registry and reads files equal to the source', async () => {
    await h.ok('mount', '--insecure', '--image', remote, mp);
    expect(sha(join(mp, 'data', 'medium.bin'))).toBe(sha(join(src.dir, 'tree', 'data', 'medium.bin')));
    const s = await mountStatus(h, mp);
    process.stderr.write(`registry: one 200 KiB file fetched ${s.bytesFetched} of ${image.bytes} bytes in ${s.requests} requests\n`);
    expect(s.bytesFetched).toBeGreaterThan(0);
    expect(s.bytesFetched).toBeLessThan(image.bytes / 4);
  });

  it('registry hung (SIGSTOP): a read of data not cached fails with EIO within the fetch deadline', async () => {
    reg.signal('SIGSTOP');
    try {
      const r = await readWithin(join(mp, 'data', 'one-mib-plus-one.bin'), 120_000);
      process.stderr.write(`read with the registry hung: ${r.error ?? r.sha} after ${r.ms} ms (deadline ${FETCH_TIMEOUT_S} s)\n`);
      expect(r.timedOut).toBe(false);
      expect(r.sha).toBeUndefined();
      expect(r.error).toMatch(/Input\/output error/);
      expect(r.ms).toBeLessThan((FETCH_TIMEOUT_S + 10) * 1000);
    } finally {
      reg.signal('SIGCONT');
    }
    // The failure a program saw is counted for its mount and logged at warn with image, blob and offset.
    expect((await mountStatus(h, mp)).failedReads).toBeGreaterThan(0);
    const logged = readFileSync(join(h.runDir, 'daemon.log'), 'utf8').split('\n').filter((l) => l.includes('"msg":"read failed"'));
    expect(logged.length).toBeGreaterThan(0);
    expect(JSON.parse(logged[0]!)).toMatchObject({ level: 40, image: remote, blob: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown, offset: expect.any(Number) as unknown });
    // The registry back: the same file reads right (nothing wrong was kept).
    expect(sha(join(mp, 'data', 'one-mib-plus-one.bin'))).toBe(sha(join(src.dir, 'tree', 'data', 'one-mib-plus-one.bin')));
  });

  it('registry stopped: cached data still reads, missing data fails with EIO after the deadline (never zeros, never a hang)', async () => {
    await reg.stop();
    expect(sha(join(mp, 'data', 'medium.bin'))).toBe(sha(join(src.dir, 'tree', 'data', 'medium.bin')));
    const r = await readWithin(join(mp, 'data', 'bulk.bin'), 180_000);
    process.stderr.write(`read with the registry down: ${r.error ?? r.sha} after ${r.ms} ms\n`);
    expect(r.timedOut).toBe(false);
    expect(r.sha).toBeUndefined();
    expect(r.error).toMatch(/Input\/output error/);
  });

  it('unmounts cleanly with the registry gone', async () => {
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });
});
