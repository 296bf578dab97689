/**
 * `ondemand umount` of a mount that another mount namespace has a copy of (a namespace made with
 * private propagation while the mount existed, as `unshare -m` or a container runtime makes them):
 * the unmount succeeds here and says the mount lives on there; reads through the copy get the right
 * bytes or an error from then on, never zeros (a fanotify mount's blobs are sparse cache files: with
 * their marks gone, a read there would see the holes), and the copy's end leaves nothing behind.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DROP_IMAGE_MOUNTS_SH } from '../../src/util/mount-namespace.js';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, detectHere, leftovers, makeHarness, type Harness } from '../mount/harness.js';
import { imagePerMode, restartModes, sha } from '../mount/images.js';
import { waitGone } from './helpers.js';

const run = promisify(execFile);
const ready = needs('umount with a copy in another mount namespace', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'],
  [haveCommand('unshare') && haveCommand('nsenter'), 'unshare and nsenter (util-linux)']);
const FILE = join('data', 'nested', 'deeper', 'three-mib.bin');

describe.skipIf(!ready)('umount of a mount copied into another mount namespace', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  let images: { mode: string; tree: string; args: string[] }[];
  const copies: ChildProcess[] = [];

  beforeAll(async () => {
    h = makeHarness('cli-nscopy');
    src = makeTempDir('cli-nscopy-src');
    images = await imagePerMode(h, src.dir, restartModes(detectHere()?.features.fanotifyPreContent?.supported === true), 'ns', 64 * 1024);
  });
  afterAll(async () => {
    for (const c of copies.splice(0)) {
      c.kill('SIGKILL');
      await waitGone(c.pid!);
    }
    await h.cleanup();
    src.remove();
  });

  /**
   * A process in a new private mount namespace, kept until killed, with its copy of `mountpoint` (the
   * copies of other tests' image mounts dropped at once: they would outlive those tests' unmounts).
   */
  async function namespaceCopy(mountpoint: string): Promise<ChildProcess> {
    const c = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `${DROP_IMAGE_MOUNTS_SH}\ndrop_image_mounts "$1"\nexec sleep 600`, 'sh', mountpoint],
      { stdio: 'ignore' });
    copies.push(c);
    const own = readlinkSync('/proc/self/ns/mnt');
    for (let i = 0; i < 250; i++) {
      try {
        if (readlinkSync(`/proc/${c.pid}/ns/mnt`) !== own && readFileSync(`/proc/${c.pid}/cmdline`, 'utf8').startsWith('sleep')) break;
      } catch { /* not started yet */ }
      await new Promise((r) => setTimeout(r, 20));
    }
    return c;
  }

  /** sha256 of `path` read in the namespace of `pid`, or the error it got. */
  async function readInside(pid: number, path: string): Promise<{ sha?: string; error?: string }> {
    try {
      const { stdout } = await run('nsenter', ['-t', String(pid), '-m', '--', 'sha256sum', path]);
      return { sha: stdout.split(' ')[0] };
    } catch (err) {
      return { error: String((err as { stderr?: string }).stderr ?? err).trim() };
    }
  }

  it('every mode: unmounted here and said so; reads through the copy are right or fail, never zeros; nothing is left', async () => {
    for (const img of images) {
      const mp = h.mountpoint(`ns-${img.mode}`);
      await h.ok('mount', '--mode', img.mode, ...img.args, mp);
      const copy = await namespaceCopy(mp); // the mount is cold: nothing of FILE fetched yet
      const r = await h.cli('umount', mp);
      expect(r.code, `${img.mode}: ${r.stderr}`).toBe(0);
      expect(r.stdout.trim(), img.mode).toBe(`unmounted ${mp} lazily, still mounted in 1 other mount namespace(s) (pid ${copy.pid}): their reads fail from now on`);
      const got = await readInside(copy.pid!, join(mp, FILE));
      if (got.sha !== undefined) expect(got.sha, `${img.mode}: read through the copy`).toBe(sha(join(img.tree, FILE)));
      else expect(got.error, img.mode).toMatch(/Input\/output error|Transport endpoint is not connected|Software caused connection abort/);
      console.log(`umount-namespace-copy: ${img.mode}: read through the copy after the unmount: ${got.sha !== undefined ? 'right bytes' : got.error}`);
      copy.kill('SIGKILL');
      await waitGone(copy.pid!);
      copies.splice(copies.indexOf(copy), 1);
      expect(leftovers(h, [mp]), img.mode).toEqual({ mounts: [], loops: [] });
    }
  });
});
