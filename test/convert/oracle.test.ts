/**
 * THE ORACLE (issue 4, must-show 2). A source image is built by umoci from a debootstrap minbase
 * rootfs, then more layers: one (unpack, modify, repack) that deletes files and a directory, changes
 * modes and owners, adds hard links (to a lower-layer file and among new files), xattrs, a fifo, a
 * device, symlinks and a modified file; one `umoci insert --opaque` (opaque directory); one
 * `umoci insert --whiteout`. It is pushed with `skopeo copy` to a real docker-registry. The CLI's
 * `ondemand convert` registry → registry result is pulled back with skopeo and mounted with the
 * kernel's erofs, and exported with `ondemand export` straight from the registry; each tree is
 * compared with `umoci unpack` of the source: bytes, modes, owners, mtimes, links, xattrs, devices
 * and hard-link groups. Converting registry → oci: must give the very same manifest digest.
 *
 * The rootfs comes from makeDebianTree (debootstrap once, then a cached tar); set
 * ONDEMAND_TEST_DEBIAN_ROOTFS to use an existing minbase tree instead.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, linkSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setXattr } from '../../src/native/xattr.js';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { compareTrees, scanTree } from '../helpers/tree-compare.js';
import { makeDebianTree } from '../helpers/trees.js';
import { ensureBuilt, repoRoot } from '../cache/dist-build.js';
import { mountLayoutImage, type MountedImage } from './mount-image.js';

const canRun = needs(
  'convert oracle (umoci + skopeo + registry + erofs mount)',
  [isRoot, 'root'],
  [haveCommand('umoci'), 'umoci'],
  [haveCommand('skopeo'), 'skopeo'],
  [haveCommand('losetup'), 'losetup'],
  [existsSync('/usr/bin/docker-registry'), 'docker-registry'],
);

function run(cmd: string, args: string[], timeoutMs = 300_000): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, maxBuffer: 64 << 20 });
}

function ondemand(args: string[]): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(join(repoRoot, 'bin/ondemand'), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { status: number; stdout: string; stderr: string };
    return { code: e.status, stdout: e.stdout, stderr: e.stderr };
  }
}

/** The extra layer's changes, made in an unpacked bundle's rootfs. */
function modifyRootfs(r: string): void {
  rmSync(join(r, 'usr/share/doc'), { recursive: true, force: true }); // a deleted directory
  rmSync(join(r, 'usr/bin/yes'), { force: true }); // a deleted file
  chmodSync(join(r, 'etc/passwd'), 0o600); // mode changes
  chmodSync(join(r, 'usr/bin/env'), 0o4755);
  chownSync(join(r, 'etc/motd'), 1000, 1001); // owner change
  appendFileSync(join(r, 'etc/issue'), 'converted by ondemand\n'); // modified content
  linkSync(join(r, 'usr/bin/dpkg'), join(r, 'usr/bin/dpkg-hardlink')); // link to a lower-layer file
  const n = join(r, 'opt/new');
  mkdirSync(n, { recursive: true });
  writeFileSync(join(n, 'a'), 'a file with links\n');
  linkSync(join(n, 'a'), join(n, 'b'));
  linkSync(join(n, 'a'), join(r, 'opt/a-elsewhere'));
  setXattr(join(n, 'a'), 'user.oracle', Buffer.from('hello'));
  setXattr(join(n, 'a'), 'trusted.overlay.x', Buffer.from([0, 1, 2, 255]));
  execFileSync('mkfifo', [join(n, 'fifo')]);
  execFileSync('mknod', [join(n, 'null'), 'c', '1', '3']);
  execFileSync('mknod', [join(n, 'blk'), 'b', '7', '200']);
  symlinkSync('/etc/passwd', join(n, 'abs-link'));
  symlinkSync('../../usr/bin/dpkg', join(n, 'rel-link'));
  writeFileSync(join(n, 'big'), randomBytes(5 * 1024 * 1024 + 17));
  writeFileSync(join(n, 'dpkg-copy'), readFileSync(join(r, 'usr/bin/dpkg'))); // dedups into layer 1's chunks
  writeFileSync(join(n, 'sparse-ish'), Buffer.alloc(3 * 1024 * 1024)); // all-zero chunks → holes
  chmodSync(join(n, 'big'), 0o2750);
  writeFileSync(join(n, 'long-name-' + 'x'.repeat(200)), 'long name\n');
}

describe.skipIf(!canRun)('convert oracle: umoci-built Debian image via skopeo and a registry', () => {
  const tmp = makeTempDir('convert-oracle');
  let registry: TestRegistry | undefined;
  const mounts: MountedImage[] = [];
  const layout = join(tmp.dir, 'layout');
  const reference = join(tmp.dir, 'ref');
  let registryDigest = '';

  beforeAll(async () => {
    ensureBuilt('dist/src/cli/commands/convert.js', ['src/convert', 'src/cli', 'src/build', 'src/format', 'src/registry', 'src/resolve', 'src/fetch']);
    let rootfs = process.env.ONDEMAND_TEST_DEBIAN_ROOTFS;
    if (rootfs === undefined) {
      rootfs = join(tmp.dir, 'debian');
      const why = makeDebianTree(rootfs); // debootstrap once, then a cached tar
      if (why !== undefined) throw new Error(`no Debian minbase tree for the oracle: ${why}`);
    }
    run('umoci', ['init', '--layout', layout]);
    run('umoci', ['new', '--image', `${layout}:src`]);
    const bundle = join(tmp.dir, 'bundle');
    run('umoci', ['unpack', '--image', `${layout}:src`, bundle]);
    run('cp', ['-a', `${rootfs}/.`, join(bundle, 'rootfs')]);
    run('umoci', ['repack', '--refresh-bundle', '--image', `${layout}:src`, bundle]);
    modifyRootfs(join(bundle, 'rootfs'));
    run('umoci', ['repack', '--image', `${layout}:src`, bundle]);
    const apt = join(tmp.dir, 'apt-new');
    mkdirSync(join(apt, 'sources.list.d'), { recursive: true });
    writeFileSync(join(apt, 'sources.list'), 'deb http://example.invalid/debian bookworm main\n');
    run('umoci', ['insert', '--image', `${layout}:src`, '--opaque', apt, '/etc/apt']);
    run('umoci', ['insert', '--image', `${layout}:src`, '--whiteout', '/etc/issue.net']);
    rmSync(bundle, { recursive: true, force: true });
    run('umoci', ['unpack', '--image', `${layout}:src`, reference]);

    registry = await startRegistry({ auth: 'none' });
    run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:src`, `docker://${registry.host}/oracle/debian:src`]);
  }, 900_000);

  afterAll(async () => {
    for (const m of mounts) m.unmount();
    await registry?.stop();
    tmp.remove();
  });

  it('has the layers the oracle needs', () => {
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const m = JSON.parse(readFileSync(join(layout, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: unknown[] };
    expect(m.layers.length).toBe(4);
    // The reference really has what the comparison must cover (so an empty diff means something).
    const ref = scanTree(join(reference, 'rootfs'));
    expect(ref.size).toBeGreaterThan(3000);
    expect(ref.get('opt/new/a')!.xattrs).toContain('user.oracle=');
    expect(ref.get('opt/new/a')!.ino).toBe(ref.get('opt/new/b')!.ino);
    expect(ref.get('usr/bin/env')!.perm).toBe(0o4755);
    expect(ref.get('opt/new/null')!.rdev).toBe('1:3');
    expect(ref.has('usr/share/doc')).toBe(false);
    expect(ref.has('etc/issue.net')).toBe(false);
    expect([...ref.keys()].filter((k) => k.startsWith('etc/apt/'))).toEqual(['etc/apt/sources.list', 'etc/apt/sources.list.d']);
  });

  it('registry → registry: convert, pull back with skopeo, mount: equals umoci unpack', async () => {
    const r = ondemand(['convert', '--json', `${registry!.host}/oracle/debian:src`, `${registry!.host}/oracle/debian:od`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { digest: string; platforms: { sourceLayers: number; blobs: unknown[]; frames: number; dedupedChunks: number }[] };
    registryDigest = result.digest;
    expect(result.platforms[0]!.sourceLayers).toBe(4);
    expect(result.platforms[0]!.blobs.length).toBeGreaterThanOrEqual(2);
    expect(result.platforms[0]!.dedupedChunks).toBeGreaterThan(0);
    const pulled = join(tmp.dir, 'pulled');
    run('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry!.host}/oracle/debian:od`, `oci:${pulled}:od`]);
    const m = await mountLayoutImage(pulled, 'od', join(tmp.dir, 'mnt-registry'));
    mounts.push(m);
    expect(m.image.manifestDigest).toBe(result.digest);
    const diffs = compareTrees(join(reference, 'rootfs'), m.dir, { root: false });
    expect(diffs.slice(0, 30)).toEqual([]);
  }, 600_000);

  it('`ondemand export` of the converted image in the registry equals umoci unpack', () => {
    const dir = join(tmp.dir, 'exported');
    const r = ondemand(['export', `${registry!.host}/oracle/debian:od`, dir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const diffs = compareTrees(join(reference, 'rootfs'), dir, { root: false });
    expect(diffs.slice(0, 30)).toEqual([]);
  }, 600_000);

  it('registry → oci: layout gives the same image, byte for byte (reproducible output)', async () => {
    const out = join(tmp.dir, 'out');
    const r = ondemand(['convert', '--json', `${registry!.host}/oracle/debian:src`, `oci:${out}:conv`]);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { digest: string };
    expect(result.digest).toBe(registryDigest);
  }, 600_000);
});
