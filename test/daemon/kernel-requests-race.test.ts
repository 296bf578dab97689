/**
 * A worker that dies while the supervisor makes an object for its mount (losetup running) is restarted,
 * and the new worker undoes the half-made mount: the object made after that must be undone too, not
 * left attached with no record (a loop device over a FUSE file was once found so after a test run).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KernelRequests } from '../../src/daemon/kernel-requests.js';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';

/** Loop devices whose backing file is `file`. */
function loopsOver(file: string): string[] {
  return execFileSync('losetup', ['--noheadings', '--output', 'NAME', '--associated', file], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

const record = (id: string, mountpoint: string) => ({
  id, mountpoint, image: 'race-test', mode: 'fuse-blobs' as const, resolve: { insecure: false }, prefetch: false, createdAt: new Date().toISOString(),
});

describe.skipIf(!needs('supervisor requests racing an undo', [isRoot, 'root']))('supervisor requests racing an undo', () => {
  let tmp: { dir: string; remove: () => void };
  let requests: KernelRequests;
  let file: string;
  beforeAll(() => {
    tmp = makeTempDir('kr-race');
    for (const d of ['run', 'cache', 'mnt']) mkdirSync(join(tmp.dir, d));
    file = join(tmp.dir, 'backing');
    writeFileSync(file, Buffer.alloc(1 << 20));
    requests = new KernelRequests(join(tmp.dir, 'run', 'mounts.json'), join(tmp.dir, 'cache'), join(tmp.dir, 'run'));
  });
  afterAll(() => {
    for (const device of loopsOver(file)) execFileSync('losetup', ['--detach', device]);
    tmp.remove();
  });

  it('a loop device attached for a mount that was undone meanwhile is detached, and its request fails', async () => {
    await requests.handle({ op: 'begin', record: record('m1', join(tmp.dir, 'mnt')) });
    const attaching = requests.handle({ op: 'attachLoop', id: 'm1', file });
    attaching.catch(() => {});
    // While losetup runs: the successor of a dead worker undoes the half-made mount.
    await requests.handle({ op: 'end', id: 'm1' });
    await expect(attaching).rejects.toThrow(/undone while its loop device .* was being made/);
    expect(loopsOver(file)).toEqual([]);
    expect(requests.size).toBe(0);
  });

  it('an object made while the mount is being undone is undone too', async () => {
    await requests.handle({ op: 'begin', record: record('m2', join(tmp.dir, 'mnt')) });
    await requests.handle({ op: 'attachLoop', id: 'm2', file });
    expect(loopsOver(file)).toHaveLength(1);
    // The end starts with the recorded loop (a losetup --detach), the second attach lands meanwhile.
    const attaching = requests.handle({ op: 'attachLoop', id: 'm2', file });
    attaching.catch(() => {});
    const ending = requests.handle({ op: 'end', id: 'm2' });
    await Promise.allSettled([attaching, ending]);
    await expect(ending).resolves.toBeNull();
    expect(loopsOver(file)).toEqual([]);
    expect(requests.size).toBe(0);
  });
});
