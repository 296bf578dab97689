/**
 * A worker killed while it is in the middle of answering a READ (its fetch stalled by a fault proxy):
 * the kernel had handed that request to the dead worker. The supervisor's fd keeps the connection, the
 * new worker sends FUSE_NOTIFY_RESEND, the kernel queues the request again and the reader gets the
 * right bytes — no hang, no error, no zeros.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { cliBuilt, leftovers, makeHarness, type Harness } from './harness.js';
import { buildImage, cliHas, makeTree, pushLayout, sha } from './images.js';

const ready = needs('worker crash during a READ', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'], [cliHas('build'), 'ondemand build'],
  [cliHas('push'), 'ondemand push'], [haveCommand('docker-registry'), 'docker-registry']);

describe.skipIf(!ready)('worker killed mid-READ', () => {
  let h: Harness;
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let src: { dir: string; remove: () => void };
  let remote: string;

  beforeAll(async () => {
    h = makeHarness('resend');
    src = makeTempDir('resend-src');
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.url);
    makeTree(join(src.dir, 'tree'), { seed: 's', bulkBytes: 8 * 1024 * 1024 });
    const image = await buildImage(h, join(src.dir, 'tree'), join(src.dir, 'layout'));
    await pushLayout(h, image.ref, `${reg.host}/resend/test:latest`);
    remote = `${proxy.host}/resend/test:latest`;
  });
  afterAll(async () => {
    await h.cleanup();
    await proxy?.stop();
    await reg?.stop();
    src.remove();
  });

  it('the request the dead worker held is answered by the new one', async () => {
    const mp = h.mountpoint('r');
    await h.ok('mount', '--insecure', '--image', remote, mp);
    // The next blob range GET stalls (then resets after 4 s): the worker holds the READ meanwhile.
    proxy.arm({ mode: 'stall-body', afterBytes: 0, holdMs: 4_000 });
    const t0 = Date.now();
    const reading = new Promise<{ sha?: string; error?: string }>((resolve) => {
      execFile('sha256sum', [join(mp, 'data', 'nested', 'deeper', 'three-mib.bin')], { timeout: 120_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) =>
        resolve(err ? { error: stderr.trim() || err.message } : { sha: stdout.split(' ')[0]! }));
    });
    for (let i = 0; i < 100 && proxy.remaining() > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(proxy.remaining()).toBe(0); // the stalled fetch is in flight: the worker holds the READ
    const s = JSON.parse(await h.ok('status', '--json')) as { daemon: { workerPid: number } };
    process.kill(s.daemon.workerPid, 'SIGKILL');
    const r = await reading;
    process.stderr.write(`read held by a killed worker: ${r.error ?? 'right bytes'} after ${Date.now() - t0} ms\n`);
    expect(r.error).toBeUndefined();
    expect(r.sha).toBe(sha(join(src.dir, 'tree', 'data', 'nested', 'deeper', 'three-mib.bin')));
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });
});
