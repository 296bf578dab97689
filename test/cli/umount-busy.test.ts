/**
 * `ondemand umount` of a mount that processes still use: refused with the processes named (the mount
 * keeps working), the daemon's MountError arrives whole over the control socket, and `--lazy` detaches.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../src/daemon/client.js';
import { isMountPoint } from '../../src/util/mountinfo.js';
import { MountError } from '../../src/util/errors.js';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, leftovers, makeHarness, type Harness } from '../mount/harness.js';
import { buildImage, makeTree, type TestImage } from '../mount/images.js';
import { waitGone } from './helpers.js';

const ready = needs('umount of a busy mount', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']);

describe.skipIf(!ready)('umount of a busy mount', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  let image: TestImage;
  let mp: string;
  const users: ChildProcess[] = [];

  /** A process whose working directory is inside the mount, and one holding a file of it open. */
  function startUsers(): { cwd: ChildProcess; open: ChildProcess } {
    const cwd = spawn('sleep', ['600'], { cwd: join(mp, 'data'), stdio: 'ignore' });
    const open = spawn('tail', ['-f', join(mp, 'etc', 'motd')], { cwd: '/', stdio: 'ignore' });
    users.push(cwd, open);
    return { cwd, open };
  }
  async function stopUsers(): Promise<void> {
    for (const u of users.splice(0)) {
      u.kill('SIGKILL');
      await waitGone(u.pid!);
    }
  }

  beforeAll(async () => {
    h = makeHarness('cli-busy');
    src = makeTempDir('cli-busy-src');
    makeTree(join(src.dir, 'tree'), { seed: 'b', bulkBytes: 256 * 1024 });
    image = await buildImage(h, join(src.dir, 'tree'), join(src.dir, 'layout'));
    mp = h.mountpoint('busy');
    await h.ok('mount', ...image.args, mp);
  });
  afterAll(async () => {
    await stopUsers();
    await h.cleanup();
    src.remove();
  });

  it('refuses with exit 1, naming each process (pid and command); the mount keeps working', async () => {
    const { cwd, open } = startUsers();
    // Both have their cwd / file open once /proc shows them there.
    for (let i = 0; i < 100 && !readFileSync(`/proc/${open.pid}/cmdline`, 'utf8').includes('tail'); i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    const r = await h.cli('umount', mp);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^ondemand: .* is busy/);
    expect(r.stderr).toContain(`pid ${cwd.pid} (sleep`);
    expect(r.stderr).toContain(`pid ${open.pid} (tail`);
    expect(r.stderr).toContain('--lazy');
    expect(isMountPoint(mp)).toBe(true);
    expect(readFileSync(join(mp, 'etc', 'motd'), 'utf8')).toBe('tree b\n');
  });

  it('the refusal arrives over the control socket as a MountError with errno EBUSY, its context and cause', async () => {
    const err: unknown = await request({ op: 'umount', mountpoint: mp }, join(h.runDir, 'control.sock')).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(MountError);
    const m = err as MountError;
    expect(m.code).toBe('EMOUNT');
    expect(m.errno).toBe(16);
    expect(m.context.mountpoint).toBe(mp);
    expect(m.cause).toBeInstanceOf(Error);
    expect((m.cause as Error).message).toMatch(/EBUSY/);
  });

  it('unmounts once nothing uses it', async () => {
    await stopUsers();
    const r = await h.cli('umount', mp);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`unmounted ${mp}`);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });

  it('--lazy detaches a busy mount and says so', async () => {
    await h.ok('mount', ...image.args, mp);
    const { cwd } = startUsers();
    await new Promise((r) => setTimeout(r, 200));
    const r = await h.cli('umount', '--lazy', mp);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/lazily/);
    expect(r.stdout).toContain(`pid ${cwd.pid}`);
    expect(isMountPoint(mp)).toBe(false);
    await stopUsers();
    expect(leftovers(h, [mp]).mounts).toEqual([]);
  });
});
