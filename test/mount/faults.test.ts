/**
 * Crashes: the worker killed while a mount is in use (the supervisor keeps the FUSE fd, a new worker
 * answers: reads wait, then return the right bytes), and the whole daemon killed with SIGKILL (reads
 * fail, never zeros; `ondemand umount` still cleans everything up from the record file).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { alive, cliBuilt, leftovers, makeHarness, type Harness } from './harness.js';
import { buildImage, makeTree, sha } from './images.js';

const ready = needs('daemon crash handling', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']);

/** sha256 of a file read by a child process (a hung read cannot hang the test), or its error. */
function shaOf(path: string, timeoutMs = 60_000): Promise<{ sha?: string; error?: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile('sha256sum', [path], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const ms = Date.now() - t0;
      if (err) resolve({ error: stderr.trim() || err.message, ms });
      else resolve({ sha: stdout.split(' ')[0]!, ms });
    });
  });
}

interface StatusJson { daemon: { pid: number; workerPid: number; workerRestarts: number } }

describe.skipIf(!ready)('daemon crashes', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  let image: string[];
  /** A second image, never read before the daemon is killed: its data can only come from the daemon. */
  let cold: string[];
  /** A tree like `image`'s, for the fuse-tree case: its reads are cold too. */
  let treeImage: string[];

  beforeAll(async () => {
    h = makeHarness('faults');
    src = makeTempDir('faults-src');
    makeTree(join(src.dir, 'tree'), { seed: 'f', bulkBytes: 24 * 1024 * 1024 });
    image = (await buildImage(h, join(src.dir, 'tree'), join(src.dir, 'layout'))).args;
    makeTree(join(src.dir, 'tree2'), { seed: 't', bulkBytes: 24 * 1024 * 1024 });
    treeImage = (await buildImage(h, join(src.dir, 'tree2'), join(src.dir, 'tree2-layout'))).args;
    makeTree(join(src.dir, 'cold'), { seed: 'c', bulkBytes: 4 * 1024 * 1024 });
    cold = (await buildImage(h, join(src.dir, 'cold'), join(src.dir, 'cold-layout'))).args;
  });
  afterAll(async () => {
    await h.cleanup();
    src.remove();
  });

  it.each([['auto'], ['fuse-tree']])('a killed worker is replaced and cold reads made meanwhile complete with the right bytes (mode %s)', async (mode) => {
    const mp = h.mountpoint(`worker-${mode}`);
    await h.ok('mount', '--mode', mode, ...(mode === 'fuse-tree' ? treeImage : image), mp);
    const s = JSON.parse(await h.ok('status', '--json')) as StatusJson;
    process.kill(s.daemon.workerPid, 'SIGKILL');
    // Cold reads while no worker runs: they wait in the kernel's FUSE queue for the new worker.
    const [bulk, three] = await Promise.all([shaOf(join(mp, 'data', 'bulk.bin')), shaOf(join(mp, 'data', 'nested', 'deeper', 'three-mib.bin'))]);
    process.stderr.write(`reads across a worker crash (${mode}): ${bulk.ms} ms and ${three.ms} ms\n`);
    const tree = join(src.dir, mode === 'fuse-tree' ? 'tree2' : 'tree');
    expect(bulk.error).toBeUndefined();
    expect(bulk.sha).toBe(sha(join(tree, 'data', 'bulk.bin')));
    expect(three.sha).toBe(sha(join(tree, 'data', 'nested', 'deeper', 'three-mib.bin')));
    const after = JSON.parse(await h.ok('status', '--json')) as StatusJson;
    expect(after.daemon.workerRestarts).toBe(s.daemon.workerRestarts + 1);
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });

  // The FUSE path: its connection dies with the supervisor (fanotify's group outlives it in a holder:
  // test/daemon/fanotify-crash.test.ts).
  it('SIGKILL of the daemon: reads fail (no zeros), and ondemand umount still cleans up', async () => {
    const mp = h.mountpoint('killed');
    await h.ok('mount', '--mode', 'fuse-blobs', ...cold, mp);
    const pid = h.daemonPid()!;
    const workerPid = (JSON.parse(await h.ok('status', '--json')) as { daemon: { workerPid: number } }).daemon.workerPid;
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && h.daemonPid() !== null; i++) await new Promise((r) => setTimeout(r, 50));
    // The worker exits when its supervisor goes; the FUSE connection dies with the last fd.
    for (let i = 0; i < 300 && alive(workerPid); i++) await new Promise((r) => setTimeout(r, 50));
    expect(alive(workerPid)).toBe(false);
    const r = await shaOf(join(mp, 'data', 'one-mib-plus-one.bin'), 30_000);
    process.stderr.write(`read after daemon SIGKILL: ${r.error ?? r.sha} (${r.ms} ms)\n`);
    expect(r.sha).toBeUndefined();
    expect(r.error).toMatch(/Transport endpoint is not connected|Input\/output error|No such device/);
    const u = await h.cli('umount', mp);
    expect(u.stderr).toBe('');
    expect(u.stdout).toMatch(/cleaned up from its record/);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });

  it('a new daemon starts cleanly after the killed one', async () => {
    const mp = h.mountpoint('after');
    await h.ok('mount', ...image, mp);
    expect((await shaOf(join(mp, 'etc', 'motd'))).sha).toBe(sha(join(src.dir, 'tree', 'etc', 'motd')));
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });
});
