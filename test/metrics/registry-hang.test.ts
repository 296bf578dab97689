/**
 * A hung registry (SIGSTOP) seen through /metrics: the read waiting on it shows as a range request in
 * flight, and once the fetch deadline fails it, as a failed read and a failed fetch of its mount.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { freePort, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { cliBuilt, makeHarness, type Harness } from '../mount/harness.js';
import { buildImage, cliHas, makeTree, pushLayout, sha } from '../mount/images.js';

const ready = needs('metrics with a hung registry', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'], [cliHas('build'), 'ondemand build'],
  [cliHas('push'), 'ondemand push'], [haveCommand('docker-registry'), 'docker-registry']);

const FETCH_TIMEOUT_S = 3;


function value(text: string, key: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${key} `));
  return line === undefined ? undefined : Number(line.slice(key.length + 1));
}

describe.skipIf(!ready)('metrics with a hung registry', () => {
  let h: Harness;
  let reg: TestRegistry;
  let src: { dir: string; remove: () => void };
  let url: string;

  beforeAll(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}/metrics`;
    h = makeHarness('metrics-reg', {
      ONDEMAND_METRICS_ADDRESS: `127.0.0.1:${port}`, ONDEMAND_FETCH_TIMEOUT: String(FETCH_TIMEOUT_S), ONDEMAND_REGISTRY_RETRIES: '0',
    });
    src = makeTempDir('metrics-reg-src');
    reg = await startRegistry();
    makeTree(join(src.dir, 'tree'), { seed: 'mr', bulkBytes: 12 * 1024 * 1024 });
    const image = await buildImage(h, join(src.dir, 'tree'), join(src.dir, 'layout'));
    await pushLayout(h, image.ref, `${reg.host}/ondemand/metrics:v1`);
  });
  afterAll(async () => {
    await h.cleanup();
    await reg?.stop();
    src.remove();
  });

  it('counts the read that failed and shows the fetch in flight meanwhile', async () => {
    const ref = `${reg.host}/ondemand/metrics:v1`;
    const mp = h.mountpoint('m');
    await h.ok('mount', '--insecure', '--image', ref, mp);
    expect(sha(join(mp, 'etc', 'motd'))).toBe(sha(join(src.dir, 'tree', 'etc', 'motd')));
    const m = `mountpoint="${mp}",image="${ref}"`;
    const scrape = async (): Promise<string> => (await fetch(url)).text();
    const before = await scrape();
    expect(value(before, `ondemand_mount_failed_reads_total{${m}}`)).toBe(0);

    reg.signal('SIGSTOP');
    try {
      // The tail of the bulk file: past any read-ahead of the first reads.
      const read = new Promise<string>((resolve) => {
        execFile('tail', ['-c', '100000', join(mp, 'data', 'bulk.bin')], { timeout: 60_000, encoding: 'buffer' }, (err, _out, stderr) =>
          resolve(err ? stderr.toString().trim() || err.message : 'read'));
      });
      let inFlight = 0;
      for (let i = 0; i < 20 && inFlight === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        inFlight = value(await scrape(), `ondemand_mount_fetches_in_flight{${m}}`) ?? 0;
      }
      expect(inFlight).toBeGreaterThan(0);
      expect(await read).toMatch(/Input\/output error/);
    } finally {
      reg.signal('SIGCONT');
    }
    const after = await scrape();
    expect(value(after, `ondemand_mount_failed_reads_total{${m}}`)).toBeGreaterThan(0);
    expect(value(after, `ondemand_mount_fetch_failures_total{${m}}`)).toBeGreaterThan(0);
    expect(value(after, 'ondemand_cache_failed_reads_total')).toBeGreaterThan(0);
    const failedBlobReads = after.split('\n').filter((l) => l.startsWith(`ondemand_blob_failed_reads_total{${m},`)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    expect(failedBlobReads).toBe(value(after, `ondemand_mount_failed_reads_total{${m}}`));
    await h.ok('umount', mp);
  });
});
