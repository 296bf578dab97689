/**
 * `--prefetch-paths`: the list's parsing, and paths/globs/directories resolved to blob ranges through a
 * real bootstrap from the project's builder (two blobs, a deduplicated chunk, inline and empty files).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/env.js';
import { bufferContent, type SourceDir, type SourceNode } from '../../src/build/source.js';
import { buildImage, type BuildResult } from '../../src/build/builder.js';
import { ErofsReader, fromBuffer } from '../../src/format/erofs/index.js';
import { parsePathList, resolvePathsInReader, type BlobRange } from '../../src/mount/prefetch-paths.js';

const meta = { perm: 0o644, uid: 0, gid: 0, mtime: 1_650_000_000n, mtimeNsec: 0, xattrs: [] };
const bytes = (size: number, seed: number): Buffer => Buffer.from(Array.from({ length: size }, (_, i) => (i * 13 + seed * 101 + (i >> 9)) & 0xff));
const file = (content: Buffer, blob = 0): SourceNode => ({ kind: 'file', ...meta, content: bufferContent(content), blob });
const dir = (entries: [string, SourceNode][]): SourceDir => ({ kind: 'dir', ...meta, perm: 0o755, entries: entries.map(([n, node]) => ({ name: Buffer.from(n), node })) });
/** The first `n` bytes of a file's ranges. */
function clip(ranges: BlobRange[], n: number): BlobRange[] {
  const out: BlobRange[] = [];
  for (const r of ranges) {
    if (n <= 0) break;
    out.push({ ...r, length: Math.min(r.length, n) });
    n -= r.length;
  }
  return out;
}
const total = (ranges: BlobRange[]): number => ranges.reduce((n, r) => n + r.length, 0);

describe('parsePathList', () => {
  it('keeps paths in order, drops comments and blank lines, trims', () => {
    expect(parsePathList('# start-up files\n/usr/bin/app\n\n  etc/*.conf  \n#/not-this\r\n/lib/**/*.so\r\n')).toEqual(['/usr/bin/app', 'etc/*.conf', '/lib/**/*.so']);
    expect(parsePathList('')).toEqual([]);
  });
});

describe('resolvePathsInReader', () => {
  let tmp: { dir: string; remove: () => void };
  let built: BuildResult;
  let reader: ErofsReader;
  const shared = bytes(256 << 10, 1);

  beforeAll(async () => {
    tmp = makeTempDir('prefetch-paths');
    const root = dir([
      ['etc', dir([['app.conf', file(bytes(100, 2))], ['big.conf', file(bytes(70_000, 3))], ['.hidden.conf', file(bytes(9000, 4))]])],
      ['usr', dir([['bin', dir([['app', file(Buffer.concat([shared, bytes(5000, 5)]), 0)]])], ['lib', dir([['x', dir([['libx.so', file(bytes(300_000, 6), 1)]])]])]])],
      ['other', file(shared, 1)],
      ['empty', file(Buffer.alloc(0))],
      ['link', { kind: 'symlink', ...meta, perm: 0o777, target: Buffer.from('usr/bin/app') }],
    ]);
    mkdirSync(join(tmp.dir, 'work'));
    built = await buildImage(root, { workDir: join(tmp.dir, 'work'), blobCount: 2, chunkSize: 64 << 10, frameSize: 64 << 10, compression: 'none' });
    reader = ErofsReader.open(fromBuffer(built.bootstrap));
  });
  afterAll(() => tmp.remove());

  it('maps a file to its blob ranges, in the list order', () => {
    const r = resolvePathsInReader(reader, ['/usr/lib/x/libx.so', 'usr/bin/app']);
    expect(r.unmatched).toEqual([]);
    expect(r.files).toBe(2);
    // libx.so is all in blob 1, listed first; app follows, in blob 0.
    const split = r.ranges.findIndex((x) => x.blob === 0);
    expect(r.ranges.slice(0, split).every((x) => x.blob === 1)).toBe(true);
    expect(total(r.ranges.slice(0, split))).toBe(300_000);
    expect(r.ranges.slice(split).every((x) => x.blob === 0)).toBe(true);
    expect(total(r.ranges.slice(split))).toBe((256 << 10) + 5000);
    for (const x of r.ranges) expect(x.offset + x.length).toBeLessThanOrEqual(built.blobs[x.blob]!.toc.uncompressedSize);
  });

  it('a deduplicated chunk points into the blob that holds it', () => {
    // `other` would go to blob 1, but its chunks are app's first 256 KiB, which blob 0 holds.
    const other = resolvePathsInReader(reader, ['/other']).ranges;
    expect(other.every((x) => x.blob === 0)).toBe(true);
    const app = resolvePathsInReader(reader, ['/usr/bin/app']).ranges;
    expect(clip(app, 256 << 10)).toEqual(other);
  });

  it('globs (dotfiles too) and directories expand in walk order; a file listed twice counts once', () => {
    const r = resolvePathsInReader(reader, ['/etc/*.conf', '/etc/big.conf', '/usr']);
    expect(r.unmatched).toEqual([]);
    // app.conf (100 bytes) is inline in the bootstrap: matched, nothing to fetch.
    expect(r.files).toBe(5);
    expect(total(r.ranges)).toBe(70_000 + 9000 + (256 << 10) + 5000 + 300_000);
    expect(total(resolvePathsInReader(reader, ['/**/*.so']).ranges)).toBe(300_000);
  });

  it('entries that match nothing with data are reported, not errors', () => {
    const r = resolvePathsInReader(reader, ['/nope', '/etc/*.none', '/link', '/empty', 'usr/bin/app']);
    // An empty file matches (there is simply nothing to fetch); a symlink is not followed.
    expect(r.unmatched).toEqual(['/nope', '/etc/*.none', '/link']);
    expect(total(r.ranges)).toBe((256 << 10) + 5000);
  });
});
