/**
 * Untrusted layers (issue 4, must-show 4): each malicious or broken source image, converted with the
 * real CLI, ends in exactly one `ondemand: ...` line naming the layer (and entry), exit code 1, no
 * output image, an emptied work directory, and nothing written outside it (canary directories that
 * absolute symlinks in the layers point at stay empty).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobPath } from '../../src/format/image/oci-layout.js';
import { readIndex } from '../../src/fetch/read-layout.js';
import { convertImage } from '../../src/convert/index.js';
import { OndemandError, errorText } from '../../src/util/errors.js';
import { makeTempDir } from '../helpers/env.js';
import { ensureBuilt, repoRoot } from '../cache/dist-build.js';
import { gzLayer, makeSourceLayout, type SourceLayer } from './layout-maker.js';
import { makeTar, paxHeader, tarEntry, tarHeader } from './tar-maker.js';

function ondemand(args: string[]): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(join(repoRoot, 'bin/ondemand'), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { status: number; stdout: string; stderr: string };
    return { code: e.status, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A gzip stream of a tar holding one `size`-byte file of zeros, made without holding it in memory. */
async function zeroBomb(size: number): Promise<Buffer> {
  async function* tar(): AsyncGenerator<Buffer> {
    yield tarHeader({ name: 'zeros', size });
    const chunk = Buffer.alloc(1 << 20);
    for (let left = size; left > 0; left -= chunk.length) yield chunk.subarray(0, Math.min(chunk.length, left));
    yield Buffer.alloc(1024);
  }
  const gz = Readable.from(tar()).pipe(createGzip({ level: 6 }));
  const parts: Buffer[] = [];
  for await (const p of gz) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

describe('convert: untrusted layers', () => {
  const tmp = makeTempDir('convert-bad');
  const canary = join(tmp.dir, 'canary');
  let n = 0;

  beforeAll(() => {
    ensureBuilt('dist/src/cli/commands/convert.js', ['src/convert', 'src/cli', 'src/build', 'src/format', 'src/registry']);
    mkdirSync(canary);
  }, 300_000);
  afterAll(() => tmp.remove());

  /**
   * Converts a source made of `layers` (through the CLI, or the API to save ~3 s of start-up per
   * case) and returns the one-line error after the common checks.
   */
  async function convertBad(layers: SourceLayer[], extra: string[] = [], via: 'cli' | 'api' = 'api'): Promise<string> {
    const dir = join(tmp.dir, `case-${++n}`);
    const work = join(dir, 'work');
    mkdirSync(work, { recursive: true });
    await makeSourceLayout(join(dir, 'src'), 'bad', layers);
    const src = `oci:${join(dir, 'src')}:bad`;
    const dst = `oci:${join(dir, 'out')}:conv`;
    let line: string;
    if (via === 'cli') {
      const r = ondemand(['convert', '--work-dir', work, ...extra, src, dst]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      const lines = r.stderr.split('\n').filter((l) => l !== '' && !/^layer \d|^building|^built/.test(l));
      expect(lines).toHaveLength(1);
      line = lines[0]!;
    } else {
      const maxLayerBytes = extra[0] === '--max-layer-size' ? 1 << 20 : undefined;
      const err = await convertImage(src, dst, { workDir: work, ...(maxLayerBytes ? { limits: { bomb: { maxLayerBytes } } } : {}) }).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(OndemandError);
      line = `ondemand: ${errorText(err)}`;
      expect(line.includes('\n')).toBe(false);
    }
    expect(line).toMatch(/^ondemand: /);
    expect(readdirSync(work)).toEqual([]); // the work directory was cleaned up
    expect(existsSync(join(dir, 'out', 'index.json')) ? (await readIndex(join(dir, 'out'))).manifests : []).toEqual([]);
    expect(readdirSync(canary)).toEqual([]); // nothing escaped through symlinks
    return line;
  }

  it('refuses `..` in a name', async () => {
    const line = await convertBad([gzLayer(makeTar([{ name: 'ok', data: 'fine' }, { name: 'a/../../escape', data: 'evil' }]))], [], 'cli');
    expect(line).toMatch(/layer 0 .*entry "a\/\.\.\/\.\.\/escape".*"\.\." component/);
  });

  it('never writes through an absolute symlink (file, directory and hard link targets)', async () => {
    const line = await convertBad([gzLayer(makeTar([{ name: 'evil', type: '2', linkname: canary }, { name: 'evil/pwned', data: 'evil' }]))], [], 'cli');
    expect(line).toMatch(/layer 0 .*entry "evil\/pwned".*parent "evil" is a symlink/);
    // Across layers: the symlink in layer 0, the write in layer 1.
    const line2 = await convertBad([
      gzLayer(makeTar([{ name: 'etc/', type: '5' }, { name: 'etc/evil', type: '2', linkname: canary }])),
      gzLayer(makeTar([{ name: 'etc/evil/sub/', type: '5' }])),
    ]);
    expect(line2).toMatch(/layer 1 .*entry "etc\/evil\/sub\/".*symlink/);
    const line3 = await convertBad([gzLayer(makeTar([{ name: 'evil', type: '2', linkname: '/etc' }, { name: 'x', type: '1', linkname: 'evil/passwd' }]))]);
    expect(line3).toMatch(/entry "x".*hard link target "evil\/passwd" does not exist/);
  });

  it('refuses hard links to missing targets and `..` targets', async () => {
    expect(await convertBad([gzLayer(makeTar([{ name: 'x', type: '1', linkname: 'nope' }]))])).toMatch(/entry "x".*does not exist in this or a lower layer/);
    expect(await convertBad([gzLayer(makeTar([{ name: 'x', type: '1', linkname: '../etc/passwd' }]))])).toMatch(/entry "x".*hard link target.*"\.\." component/);
  });

  it('refuses oversized headers and names', async () => {
    const hugePax = paxHeader({ comment: 'x'.repeat(2 << 20) });
    expect(await convertBad([gzLayer(makeTar([hugePax, { name: 'f', data: 'x' }]))])).toMatch(/layer 0 .*PAX header of \d+ bytes exceeds the limit/);
    const longPath = paxHeader({ path: 'a/'.repeat(3000) + 'f' });
    expect(await convertBad([gzLayer(makeTar([longPath, { name: 'f', data: 'x' }]))])).toMatch(/path of 6001 bytes exceeds the limit of 4096/);
    const longName = paxHeader({ path: 'n'.repeat(300) });
    expect(await convertBad([gzLayer(makeTar([longName, { name: 'f', data: 'x' }]))])).toMatch(/name component is 300 bytes/);
  });

  it('refuses truncated archives, bad checksums and sparse entries', async () => {
    const full = makeTar([{ name: 'f', data: Buffer.alloc(5000, 1) }], { end: false });
    expect(await convertBad([gzLayer(full.subarray(0, 2000))])).toMatch(/layer 0 .*entry "f".*truncated archive/);
    const bad = tarEntry({ name: 'f', data: 'x' });
    bad[0] = 0x67; // name changes, checksum does not
    expect(await convertBad([gzLayer(Buffer.concat([bad, Buffer.alloc(1024)]))])).toMatch(/bad header checksum/);
    expect(await convertBad([gzLayer(makeTar([{ name: 's', type: 'S', data: 'x' }]))])).toMatch(/entry "s".*sparse files are not supported/);
  });

  it('refuses malformed gzip and zstd, and a layer whose digest does not match', async () => {
    const gz = gzLayer(makeTar([{ name: 'f', data: Buffer.alloc(100_000, 3) }]));
    const broken = Buffer.from(gz.bytes);
    broken.fill(0x55, 20, Math.min(150, broken.length - 8));
    expect(await convertBad([{ bytes: broken, mediaType: gz.mediaType! }])).toMatch(/layer 0 .*malformed gzip/);
    const zstd = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(64, 0xff)]);
    expect(await convertBad([{ bytes: zstd, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }])).toMatch(/layer 0 .*malformed zstd/);

    // Swap a layer's bytes after the manifest names them.
    const dir = join(tmp.dir, 'digest');
    const good = gzLayer(makeTar([{ name: 'f', data: 'good' }]));
    await makeSourceLayout(dir, 'bad', [good]);
    const idx = await readIndex(dir);
    const manifest = JSON.parse(execFileSync('cat', [blobPath(dir, idx.manifests[0]!.digest)], { encoding: 'utf8' })) as { layers: { digest: string }[] };
    const evil = gzLayer(makeTar([{ name: 'f', data: 'evil' }]));
    writeFileSync(blobPath(dir, manifest.layers[0]!.digest), evil.bytes);
    const r = ondemand(['convert', `oci:${dir}:bad`, `oci:${join(dir, 'out')}:c`]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^ondemand: .*layer 0 .*(digest|bytes, the manifest says)/);
  });

  it('stops a gzip bomb (ratio) and honours --max-layer-size', async () => {
    const bomb = { bytes: await zeroBomb(128 << 20), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
    expect(bomb.bytes.length).toBeLessThan(1 << 20);
    expect(await convertBad([bomb])).toMatch(/layer 0 .*expands more than 400:1.*decompression bomb/);
    const normal = gzLayer(makeTar([{ name: 'f', data: Buffer.alloc(3 << 20, 1) }]));
    expect(await convertBad([normal], ['--max-layer-size', '1M'], 'cli')).toMatch(/layer 0 .*expands beyond 1048576 bytes/);
  }, 60_000);

  it('refuses non-tar layers and already-converted images', async () => {
    expect(await convertBad([{ bytes: Buffer.from('{}'), mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip' }])).toMatch(/not a tar layer/);
  });
});
