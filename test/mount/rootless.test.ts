/**
 * An unprivileged user (nobody) runs `ondemand mount` without --mode: detection passes over every
 * mode that needs mount(2), picks fuse-tree, and the user's own daemon mounts through Debian's
 * fusermount3, with its run dir under $XDG_RUNTIME_DIR and its cache under the user's cache dir.
 * The tree equals its source; `status`, `cache ls` and `umount` work the same as for root.
 *
 * The test needs what a Debian host gives a user: /dev/fuse open to everyone (udev's rule; this
 * sandbox's devtmpfs has it 0600, so the test sets it and restores it) and a checkout the user can
 * read (a checkout under a 0700 directory gets o+x on its ancestors for the test's duration).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { mountpoints } from '../helpers/transport-mount.js';
import { cliBuilt, cliPath, makeHarness, repoRoot, type CliResult, type Harness } from './harness.js';
import { makeTree } from './images.js';

const NOBODY = 65534;
const ready = needs('rootless fuse-tree', [isRoot, 'root (to become an unprivileged user)'], [cliBuilt(), 'a current build (make build)'],
  [haveCommand('fusermount3'), 'fusermount3 (fuse3)'], [haveCommand('setpriv'), 'setpriv (util-linux)']);

/** Every entry's path, type, mode, size, symlink target and content hash, sorted. */
const LISTING = `
import hashlib, os, stat, sys
root = sys.argv[1]
out = []
for d, dirs, files in os.walk(root):
    for n in dirs + files:
        p = os.path.join(d, n); st = os.lstat(p); rel = os.path.relpath(p, root)
        extra = os.readlink(p) if stat.S_ISLNK(st.st_mode) else hashlib.sha256(open(p, 'rb').read()).hexdigest() if stat.S_ISREG(st.st_mode) else ''
        out.append(f'{rel} {oct(st.st_mode)} {st.st_size if not stat.S_ISDIR(st.st_mode) else 0} {st.st_mtime_ns} {extra}')
print('\\n'.join(sorted(out)))
`;

/** Runs a program as nobody, with only a user's environment. */
function asUserRun(home: string, ...command: string[]): Promise<CliResult> {
  const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_RUNTIME_DIR: join(home, 'run') };
  return new Promise((resolve) => {
    execFile('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', ...command], { env, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 99) : 0, stdout, stderr }));
  });
}

/** Runs the CLI as nobody. */
function asUser(home: string, ...args: string[]): Promise<CliResult> {
  return asUserRun(home, process.execPath, cliPath, ...args);
}

describe.skipIf(!ready)('an unprivileged user mounts with fuse-tree', () => {
  let h: Harness;
  let tmp: { dir: string; remove: () => void };
  let home: string;
  const restore: (() => void)[] = [];

  beforeAll(async () => {
    const fuseMode = statSync('/dev/fuse').mode & 0o777;
    if ((fuseMode & 0o006) !== 0o006) {
      process.stderr.write(`/dev/fuse is 0${fuseMode.toString(8)} here; 0666 (Debian's udev rule) for this test\n`);
      chmodSync('/dev/fuse', 0o666);
      restore.push(() => chmodSync('/dev/fuse', fuseMode));
    }
    for (let d = repoRoot; d !== dirname(d); d = dirname(d)) {
      const mode = statSync(d).mode & 0o7777;
      if ((mode & 0o001) === 0) {
        chmodSync(d, mode | 0o001);
        restore.push(() => chmodSync(d, mode));
      }
    }
    h = makeHarness('rootless');
    tmp = makeTempDir('rootless');
    chmodSync(tmp.dir, 0o755);
    home = join(tmp.dir, 'home');
    for (const d of [home, join(home, 'run'), join(home, 'mnt')]) {
      mkdirSync(d, { recursive: true });
      chownSync(d, NOBODY, NOBODY);
    }
    makeTree(join(tmp.dir, 'src'), { seed: 'rootless', bulkBytes: 4 << 20 });
    await h.ok('build', join(tmp.dir, 'src'), `oci:${join(tmp.dir, 'layout')}:t`);
    execFileSync('chmod', ['-R', 'a+rX', join(tmp.dir, 'layout')]);
  }, 300_000);

  afterAll(async () => {
    try {
      await stopUserDaemon();
      await h?.cleanup();
      tmp?.remove();
    } finally {
      for (const r of restore.reverse()) r();
    }
  });

  async function stopUserDaemon(): Promise<void> {
    if (home !== undefined) {
      const mnt = join(home, 'mnt');
      if (mountpoints().includes(mnt)) execFileSync('umount', ['-l', mnt]);
      const pid = join(home, 'run', 'ondemand', 'daemon.pid');
      if (existsSync(pid)) {
        try { process.kill(Number(readFileSync(pid, 'utf8').trim()), 'SIGTERM'); } catch { /* gone */ }
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  it('detect picks fuse-tree and says why the others are out', async () => {
    const r = await asUser(home, 'detect');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/skipped fanotify: needs mount\(2\) of erofs: not root/);
    expect(r.stdout).toMatch(/skipped fuse-blobs: needs mount\(2\) of erofs/);
    expect(r.stdout).toMatch(/^mode: fuse-tree \(FUSE through fusermount3/m);
  });

  it('mounts, reads, lists status and cache, and unmounts, all in the user\'s own dirs', async () => {
    const mnt = join(home, 'mnt');
    const m = await asUser(home, 'mount', '--image', `oci:${join(tmp.dir, 'layout')}:t`, mnt);
    expect(m.stderr).toBe('');
    expect(m.stdout).toMatch(/mode fuse-tree: FUSE through fusermount3/);
    expect(mountpoints()).toContain(mnt);
    // Without allow_other only the user may look inside (root included): the user lists and hashes it.
    const listing = (await asUserRun(home, 'python3', '-c', LISTING, mnt)).stdout;
    expect(listing).toBe(execFileSync('python3', ['-c', LISTING, join(tmp.dir, 'src')], { encoding: 'utf8' }));
    expect(listing.split('\n').length).toBeGreaterThan(8);
    const s = await asUser(home, 'status');
    expect(s.code).toBe(0);
    expect(s.stdout).toContain(`cache ${join(home, '.cache', 'ondemand')}`);
    expect(s.stdout).toMatch(/fuse-tree +100\.0% present/);
    const c = await asUser(home, 'cache', 'ls');
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(/1 blobs/);
    expect(statSync(join(home, 'run', 'ondemand', 'control.sock')).uid).toBe(NOBODY);
    const u = await asUser(home, 'umount', mnt);
    expect(u.stderr).toBe('');
    expect(u.stdout).toMatch(/unmounted/);
    expect(mountpoints()).not.toContain(mnt);
  }, 300_000);
});
