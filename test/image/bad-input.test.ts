/**
 * Bad input never crashes or hangs: truncated, bit-flipped and fuzzed bootstraps, TOCs and manifests
 * either read fine or fail with a typed OndemandError; through the CLI each gives one line
 * `ondemand: ...` and exit 1. Fuzzing is seeded (reproducible).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/env.js';
import { OndemandError } from '../../src/util/errors.js';
import { bufferContent, type SourceDir, type SourceNode } from '../../src/build/source.js';
import { buildImage } from '../../src/build/builder.js';
import { storeInLayout } from '../../src/build/to-layout.js';
import { resolveImage } from '../../src/resolve/index.js';
import { checkImage } from '../../src/reader/check.js';
import { decodeToc, encodeToc } from '../../src/format/image/toc.js';
import { parseManifest } from '../../src/format/image/manifest.js';
import { blobPath } from '../../src/format/image/oci-layout.js';
import { readIndex } from '../../src/fetch/read-layout.js';
import { materializeImage, type LocalImageFiles } from './mounts.js';
import { ondemand } from './cli.js';

/** xorshift32: reproducible fuzzing. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

function meta(): { perm: number; uid: number; gid: number; mtime: bigint; mtimeNsec: number; xattrs: { name: string; value: Buffer }[] } {
  return { perm: 0o755, uid: 0, gid: 0, mtime: 1_700_000_000n, mtimeNsec: 5, xattrs: [] };
}

function smallTree(): SourceDir {
  const file = (size: number, seed: number): SourceNode => {
    const r = rng(seed);
    const bytes = Buffer.alloc(size);
    for (let i = 0; i < size; i++) bytes[i] = Math.floor(r() * 256);
    return { kind: 'file', ...meta(), content: bufferContent(bytes) };
  };
  const sub: SourceDir = { kind: 'dir', ...meta(), entries: [
    { name: Buffer.from('a'), node: file(10, 1) },
    { name: Buffer.from('b'), node: file(300_000, 2) },
    { name: Buffer.from('link'), node: { kind: 'symlink', ...meta(), target: Buffer.from('a') } },
  ] };
  sub.xattrs = [{ name: 'user.x', value: Buffer.from('yes') }];
  return { kind: 'dir', ...meta(), entries: [
    { name: Buffer.from('sub'), node: sub },
    { name: Buffer.from('big'), node: file(2_500_000, 3) },
    { name: Buffer.from('fifo'), node: { kind: 'fifo', ...meta() } },
  ] };
}

/** Runs `fn` with a deadline; returns 'ok', the OndemandError, or throws for anything else (a crash). */
async function outcome(fn: () => Promise<unknown>, ms = 10_000): Promise<'ok' | OndemandError> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang: no answer within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([fn(), deadline]);
    return 'ok';
  } catch (err) {
    if (err instanceof OndemandError) return err;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

function expectOneLineFailure(r: { code: number; stdout: string; stderr: string }): void {
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/^ondemand: [^\n]+\n$/);
}

describe('bad input', () => {
  let tmp: { dir: string; remove: () => void };
  let layout: string;
  let files: LocalImageFiles;
  let manifestPath: string;

  beforeAll(async () => {
    tmp = makeTempDir('image-bad');
    layout = join(tmp.dir, 'layout');
    mkdirSync(join(tmp.dir, 'work'));
    const built = await buildImage(smallTree(), { workDir: join(tmp.dir, 'work'), frameSize: 256 << 10, chunkSize: 64 << 10 });
    await storeInLayout(built, layout, 'v1');
    const resolved = await resolveImage(`oci:${layout}:v1`);
    files = await materializeImage(resolved, join(tmp.dir, 'plain'));
    await resolved.fetcher.close();
    manifestPath = blobPath(layout, (await readIndex(layout)).manifests[0]!.digest);
  }, 60_000);

  afterAll(() => tmp?.remove());

  const checkPlain = (bootstrap: Buffer) => outcome(async () => {
    const path = join(tmp.dir, 'fuzzed.erofs');
    writeFileSync(path, bootstrap);
    const resolved = await resolveImage(path, { blobs: files.blobs });
    try {
      await checkImage(resolved);
    } finally {
      await resolved.fetcher.close();
    }
  });

  it('the intact plain bootstrap + blob pass check', async () => {
    expect(await checkPlain(readFileSync(files.bootstrap))).toBe('ok');
  });

  it('truncated bootstraps fail with a typed error', async () => {
    const good = readFileSync(files.bootstrap);
    for (const len of [0, 1, 1023, 1024, 1100, 1151, 1200, 2048, 4095, good.length - 4096, good.length - 1]) {
      if (len < 0 || len >= good.length) continue;
      const r = await checkPlain(good.subarray(0, len));
      expect(r, `length ${len}`).toBeInstanceOf(OndemandError);
    }
  });

  it('bit-flipped and fuzzed bootstraps never crash or hang the reader', async () => {
    const good = readFileSync(files.bootstrap);
    const rand = rng(12345);
    let failures = 0;
    for (let round = 0; round < 300; round++) {
      const bad = Buffer.from(good);
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips; f++) {
        // Bias towards the metadata area where the structures live.
        const at = Math.floor(rand() * Math.min(bad.length, rand() < 0.7 ? 8192 : bad.length));
        if (rand() < 0.5) bad[at]! ^= 1 << Math.floor(rand() * 8);
        else bad[at] = Math.floor(rand() * 256);
      }
      const r = await checkPlain(bad);
      if (r !== 'ok') failures++;
    }
    expect(failures).toBeGreaterThan(0);
  }, 120_000);

  it('fuzzed TOCs decode or fail with FormatError, never anything else', () => {
    const resolvedToc = readFileSync(files.blobs[0]!); // any bytes: the real TOC comes from the layout below
    expect(resolvedToc.length).toBeGreaterThan(0);
    const index = JSON.parse(readFileSync(manifestPath, 'utf8')) as { layers: { digest: string; annotations: Record<string, string> }[] };
    const layer = index.layers[0]!;
    const stored = readFileSync(blobPath(layout, layer.digest));
    const tocOffset = Number(layer.annotations['org.ondemand.toc.offset']);
    const good = stored.subarray(tocOffset);
    expect(encodeToc(decodeToc(good))).toEqual(good);
    const rand = rng(777);
    for (let round = 0; round < 2000; round++) {
      const bad = Buffer.from(good);
      const flips = 1 + Math.floor(rand() * 3);
      for (let f = 0; f < flips; f++) bad[Math.floor(rand() * bad.length)] = Math.floor(rand() * 256);
      const cut = rand() < 0.2 ? bad.subarray(0, Math.floor(rand() * bad.length)) : bad;
      try {
        decodeToc(cut, { storedSize: tocOffset });
      } catch (err) {
        expect(err).toBeInstanceOf(OndemandError);
      }
    }
  });

  it('fuzzed manifests parse or fail with FormatError', () => {
    const good = readFileSync(manifestPath);
    const rand = rng(4242);
    const ctx = { ref: 'fuzz', manifestDigest: 'sha256:' + '0'.repeat(64) };
    for (let round = 0; round < 2000; round++) {
      const bad = Buffer.from(good);
      for (let f = 0; f < 1 + Math.floor(rand() * 3); f++) bad[Math.floor(rand() * bad.length)] = 32 + Math.floor(rand() * 95);
      try {
        parseManifest(bad, ctx);
      } catch (err) {
        expect(err).toBeInstanceOf(OndemandError);
      }
    }
    // Structural mutations: every field removed or given a wrong type in turn.
    const base = JSON.parse(good.toString()) as Record<string, unknown>;
    const paths: string[][] = [['schemaVersion'], ['mediaType'], ['config'], ['layers'], ['annotations'], ['config', 'digest'], ['layers', '0', 'annotations'], ['layers', '0', 'size'], ['layers', '1', 'annotations']];
    for (const path of paths) {
      for (const value of [undefined, null, 'x', -1, 1.5, [], {}]) {
        if (path.join('.') === 'mediaType' && value === undefined) continue; // optional in OCI manifests
        const m = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
        let at: Record<string, unknown> = m;
        for (const k of path.slice(0, -1)) at = at[k] as Record<string, unknown>;
        if (value === undefined) delete at[path[path.length - 1]!];
        else at[path[path.length - 1]!] = value;
        expect(() => parseManifest(Buffer.from(JSON.stringify(m)), ctx), path.join('.')).toThrow(OndemandError);
      }
    }
  });

  it('CLI: corrupt manifest, TOC, frame and bootstrap each give one line and exit 1', () => {
    const copy = (name: string): string => {
      const dir = join(tmp.dir, name);
      mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
      for (const f of ['oci-layout', 'index.json']) copyFileSync(join(layout, f), join(dir, f));
      const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
      for (const d of [m.config.digest, ...m.layers.map((l) => l.digest), (JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] }).manifests[0]!.digest]) {
        copyFileSync(blobPath(layout, d), blobPath(dir, d));
      }
      return dir;
    };
    const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as { layers: { digest: string; size: number }[] };
    const flip = (path: string, at: number): void => {
      const b = readFileSync(path);
      b[at]! ^= 0x40;
      writeFileSync(path, b);
    };
    const d1 = copy('bad-manifest');
    flip(blobPath(d1, (JSON.parse(readFileSync(join(d1, 'index.json'), 'utf8')) as { manifests: { digest: string }[] }).manifests[0]!.digest), 10);
    expectOneLineFailure(ondemand(['inspect', `oci:${d1}`]));
    const d2 = copy('bad-toc');
    flip(blobPath(d2, m.layers[0]!.digest), m.layers[0]!.size - 5);
    expectOneLineFailure(ondemand(['check', `oci:${d2}`]));
    const d3 = copy('bad-frame');
    flip(blobPath(d3, m.layers[0]!.digest), 100);
    const r3 = ondemand(['check', `oci:${d3}`]);
    expectOneLineFailure(r3);
    expect(r3.stderr).toMatch(/frame|digest/);
    const d4 = copy('bad-bootstrap');
    flip(blobPath(d4, m.layers[m.layers.length - 1]!.digest), 30);
    expectOneLineFailure(ondemand(['check', `oci:${d4}`]));
    const trunc = join(tmp.dir, 'trunc.erofs');
    writeFileSync(trunc, readFileSync(files.bootstrap).subarray(0, 1500));
    expectOneLineFailure(ondemand(['inspect', trunc, '--blob', files.blobs[0]!]));
    expectOneLineFailure(ondemand(['inspect', join(tmp.dir, 'no-such-file')]));
    expect(ondemand(['inspect']).code).toBe(2);
    // Bad usage: one line too, then where to read more.
    // An empty tag or layout path is a typo, not the default tag or the current directory.
    for (const args of [['inspect'], ['mount', '--mode', 'bogus', '--image', `oci:${layout}:v1`, tmp.dir], ['cache', 'ls', '--bogus'],
      ['inspect', `oci:${layout}:`], ['check', 'oci:'], ['build', tmp.dir, `oci:${join(tmp.dir, 'out')}:`]]) {
      const r = ondemand(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/^ondemand: [^\n]+\n\(see ondemand --help\)\n$/);
    }
  }, 120_000);
});
