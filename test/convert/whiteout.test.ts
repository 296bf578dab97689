/**
 * Whiteouts, opaque directories, replacement rules and hard links across layers: a two-layer image
 * made by hand (OCI layout, tar+gzip layers) is converted, mounted with the kernel's erofs, and
 * compared with the merged tree the OCI rules give, built on disk by the test.
 */
import { readFileSync, chownSync, linkSync, lutimesSync, mkdirSync, readdirSync, lstatSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { convertImage } from '../../src/convert/index.js';
import { setXattr } from '../../src/native/xattr.js';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { compareTrees } from '../helpers/tree-compare.js';
import { gzLayer, makeSourceLayout } from './layout-maker.js';
import { mountLayoutImage, type MountedImage } from './mount-image.js';
import { makeTar, paxHeader } from './tar-maker.js';

const T = 1_700_000_000;
const BIG = Buffer.alloc(3 * 1024 * 1024 + 123, 7).fill(9, 1024 * 1024);

function layer1(): Buffer {
  return makeTar([
    { name: 'etc/', type: '5' },
    { name: 'etc/keep', data: 'keep\n' },
    { name: 'etc/gone', data: 'gone\n' },
    { name: 'etc/replaced', data: 'v1\n' },
    { name: 'opq/', type: '5' },
    { name: 'opq/old1', data: 'old1\n' },
    { name: 'opq/sub/', type: '5' },
    { name: 'opq/sub/old2', data: 'old2\n' },
    { name: 'wdir/', type: '5' },
    { name: 'wdir/x', data: 'x\n' },
    { name: 'link-src', data: 'shared\n', mode: 0o640, uid: 7, gid: 8 },
    { name: 'abs', type: '2', linkname: '/etc/keep' },
    { name: 'modes', data: 'modes\n', mode: 0o644 },
    { name: 'd2/', type: '5' },
    { name: 'd2/child', data: 'child\n' },
    { name: 'f2', data: 'file becomes dir\n' },
    { name: 'big', data: BIG },
    { name: 'big-same', data: BIG },
  ]);
}

function layer2(): Buffer {
  return makeTar([
    { name: 'etc/', type: '5', mode: 0o750 },
    { name: 'etc/.wh.gone' },
    { name: 'etc/replaced', data: 'v2\n', mode: 0o600, uid: 1000, gid: 1000 },
    { name: 'opq/', type: '5' },
    { name: 'opq/.wh..wh..opq' },
    { name: 'opq/new', data: 'new\n' },
    { name: '.wh.wdir' },
    { name: 'hl', type: '1', linkname: 'link-src' },
    { name: 'modes', data: 'modes\n', mode: 0o4755 },
    { name: 'fifo', type: '6', mode: 0o600 },
    { name: 'null', type: '3', mode: 0o666, devmajor: 1, devminor: 3 },
    { name: 'd2', data: 'dir becomes file\n' },
    { name: 'f2/', type: '5', mode: 0o700 },
    { name: 'f2/inner', data: 'inner\n' },
    paxHeader({ 'SCHILY.xattr.user.test': 'abc', mtime: `${T}.25` }),
    { name: 'xattr-file', data: 'with xattr\n' },
    { name: '/abs-named', data: 'leading slash stripped\n' },
  ]);
}

/** The merged tree, as the OCI rules say it must be. */
function buildExpected(dir: string): void {
  const file = (p: string, data: string | Buffer, mode = 0o644, uid = 0, gid = 0): void => {
    writeFileSync(join(dir, p), data);
    chownSync(join(dir, p), uid, gid); // before chmod: chown clears setuid
    chmodSync(join(dir, p), mode);
  };
  const d = (p: string, mode = 0o755): void => {
    mkdirSync(join(dir, p));
    chmodSync(join(dir, p), mode);
  };
  d('etc', 0o750);
  file('etc/keep', 'keep\n');
  file('etc/replaced', 'v2\n', 0o600, 1000, 1000);
  d('opq');
  file('opq/new', 'new\n');
  file('link-src', 'shared\n', 0o640, 7, 8);
  linkSync(join(dir, 'link-src'), join(dir, 'hl'));
  symlinkSync('/etc/keep', join(dir, 'abs'));
  file('modes', 'modes\n', 0o4755);
  file('d2', 'dir becomes file\n');
  d('f2', 0o700);
  file('f2/inner', 'inner\n');
  file('big', BIG);
  file('big-same', BIG);
  execFileSync('mkfifo', ['-m', '600', join(dir, 'fifo')]);
  execFileSync('mknod', ['-m', '666', join(dir, 'null'), 'c', '1', '3']);
  file('xattr-file', 'with xattr\n');
  setXattr(join(dir, 'xattr-file'), 'user.test', Buffer.from('abc'));
  file('abs-named', 'leading slash stripped\n');
  // Times last, children before parents.
  const stamp = (p: string): void => {
    const abs = join(dir, p);
    if (lstatSync(abs).isDirectory()) for (const n of readdirSync(abs)) stamp(p === '' ? n : `${p}/${n}`);
    if (p !== '') lutimesSync(abs, T, T);
  };
  stamp('');
  lutimesSync(join(dir, 'xattr-file'), T + 0.25, T + 0.25);
}

const canRun = needs('convert whiteout test (kernel erofs mount)', [isRoot, 'root'], [haveCommand('losetup'), 'losetup']);

describe.skipIf(!canRun)('convert: whiteouts, opaque dirs, hard links across layers', () => {
  const tmp = makeTempDir('convert-wh');
  let mounted: MountedImage | undefined;
  afterAll(() => {
    mounted?.unmount();
    tmp.remove();
  });

  it('converted tree equals the OCI merged tree', async () => {
    const src = join(tmp.dir, 'src');
    await makeSourceLayout(src, 'v1', [gzLayer(layer1()), gzLayer(layer2())]);
    const result = await convertImage(`oci:${src}:v1`, `oci:${join(tmp.dir, 'out')}:conv`, { workDir: tmp.dir });
    expect(result.platforms).toHaveLength(1);
    const p = result.platforms[0]!;
    // Layer 1's blob keeps big (and big-same deduplicated into it); layer 2 has only inline-size files.
    expect(p.sourceLayers).toBe(2);
    expect(p.dedupedChunks).toBeGreaterThanOrEqual(4);

    mounted = await mountLayoutImage(join(tmp.dir, 'out'), 'conv', join(tmp.dir, 'mount'));
    const expected = join(tmp.dir, 'expected');
    mkdirSync(expected);
    buildExpected(expected);
    expect(compareTrees(expected, mounted.dir, { root: false })).toEqual([]);
  });
});

describe.skipIf(!canRun)('convert: the top layer laid out as it streams', () => {
  const tmp = makeTempDir('convert-top');
  let mounted: MountedImage | undefined;
  afterAll(() => {
    mounted?.unmount();
    tmp.remove();
  });

  // The top layer's files go into its blob as they stream in, before the lower layers' files are laid
  // out: a chunk a lower file keeps must still be stored once, in the lower blob; a chunk whose lower
  // file the top layer deletes must still be stored (in the top blob); zero chunks stay holes.
  it('chunks shared with lower layers land where tree order puts them, and the tree reads right', async () => {
    const MiB = 1024 * 1024;
    const kept = randomBytes(2 * MiB + 512 * 1024);
    const deleted = randomBytes(2 * MiB);
    const own = randomBytes(MiB + 4096 * 3 + 5);
    const zeros = Buffer.alloc(3 * MiB);
    const mixed = Buffer.concat([deleted.subarray(0, MiB), Buffer.alloc(MiB), own.subarray(0, MiB)]);
    const lower = makeTar([{ name: 'lib/', type: '5' }, { name: 'lib/kept', data: kept }, { name: 'lib/deleted', data: deleted }]);
    const upper = makeTar([
      { name: 'lib/', type: '5' },
      { name: 'lib/.wh.deleted' },
      { name: 'copy-of-kept', data: kept },
      { name: 'copy-of-deleted', data: deleted },
      { name: 'own', data: own },
      { name: 'zeros', data: zeros },
      { name: 'mixed', data: mixed },
      { name: 'small', data: 'inline\n' },
    ]);
    const src = join(tmp.dir, 'src');
    await makeSourceLayout(src, 'v1', [gzLayer(lower), gzLayer(upper)]);
    const result = await convertImage(`oci:${src}:v1`, `oci:${join(tmp.dir, 'out')}:conv`, { workDir: tmp.dir, compression: 'none' });
    const p = result.platforms[0]!;
    // Lower blob: kept's 3 chunks only (deleted is gone from the tree). Upper blob: own's 2 chunks and
    // deleted's 2 (its lower copy was not kept); copy-of-kept's 3 chunks and mixed's 2 data chunks are
    // copies; zeros' 3 chunks and mixed's middle one are holes.
    expect(p.blobs.map((b) => b.uncompressedSize)).toEqual([2 * MiB + 512 * 1024, 3 * MiB + 4 * 4096]);
    expect(p.storedChunks).toBe(7);
    expect(p.dedupedChunks).toBe(5);

    mounted = await mountLayoutImage(join(tmp.dir, 'out'), 'conv', join(tmp.dir, 'mount'));
    const read = (name: string): Buffer => readFileSync(join(mounted!.dir, name));
    expect(read('lib/kept').equals(kept)).toBe(true);
    expect(read('copy-of-kept').equals(kept)).toBe(true);
    expect(read('copy-of-deleted').equals(deleted)).toBe(true);
    expect(read('own').equals(own)).toBe(true);
    expect(read('zeros').equals(zeros)).toBe(true);
    expect(read('mixed').equals(mixed)).toBe(true);
    expect(read('small').toString()).toBe('inline\n');
    expect(readdirSync(join(mounted.dir, 'lib'))).toEqual(['kept']);
  });
});
