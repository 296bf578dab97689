/** `ondemand bench`'s pure parts: latency quantiles, mode choice, ratios to local, the reports. */
import { describe, expect, it } from 'vitest';
import { modeUsable } from '../mount/mode-choice.js';
import { FEATURE_NAMES, type Features } from '../transport/kernel-features.js';
import { merge, quantile, record, type LatencyCounts } from './latency.js';
import { skopeoSource } from './pull.js';
import { renderHtml } from './report-html.js';
import { renderText } from './report-text.js';
import { buildCells, chooseBenchModes, headline } from './run.js';
import { BENCH_SCHEMA, type BenchReport, type BenchSample, type Workload } from './types.js';

function features(have: Partial<Record<(typeof FEATURE_NAMES)[number], boolean>>): Features {
  const f = {} as Features;
  for (const name of FEATURE_NAMES) f[name] = { supported: have[name] ?? false, reason: name };
  return f;
}

function sample(run: number, wallMs: number, value = 1000 / wallMs): BenchSample {
  return { run, wallMs, ops: 1, bytes: 0, p50Us: 1, p99Us: 2, value, mountMs: 1, fetchedBytes: 0, fetchedRequests: 0, daemonCpuMs: 0 };
}

describe('latency counts', () => {
  it('gives quantiles within the bucket width (1.1 %) and merges processes', () => {
    const a: LatencyCounts = {};
    const b: LatencyCounts = {};
    for (let i = 1; i <= 1000; i++) record(i % 2 ? a : b, i * 1000);
    merge(a, b);
    expect(Math.abs(quantile(a, 0.5)! - 500_000) / 500_000).toBeLessThan(0.011);
    expect(Math.abs(quantile(a, 0.99)! - 990_000) / 990_000).toBeLessThan(0.011);
    expect(quantile({}, 0.5)).toBeNull();
  });
});

describe('modes', () => {
  const host618 = features({ mountSyscall: true, erofs: true, erofsImages: true, erofsFileBacked: true, fuse: true, fusePassthrough: true, fanotifyPreContent: true, loop: true });
  it('auto: every mode the host can serve and ondemand implements (a transport that lands joins by itself)', () => {
    const usable = (m: Parameters<typeof modeUsable>[0], f: Features): boolean => modeUsable(m, f, ['fscache', 'fanotify', 'fuse-blobs']).ok;
    expect(chooseBenchModes('auto', host618, usable)).toEqual(['fanotify', 'fuse-blobs']);
    const withTree = (m: Parameters<typeof modeUsable>[0], f: Features): boolean => modeUsable(m, f, ['fscache', 'fanotify', 'fuse-blobs', 'fuse-tree']).ok;
    expect(chooseBenchModes('auto', host618, withTree)).toEqual(['fanotify', 'fuse-blobs', 'fuse-tree']);
    const guest61 = features({ mountSyscall: true, erofs: true, erofsImages: true, fuse: true, loop: true, cachefilesOndemand: true });
    expect(chooseBenchModes('auto', guest61, usable)).toEqual(['fscache', 'fuse-blobs']);
  });
  it('all: every mode there is; a list: checked', () => {
    expect(chooseBenchModes('all', host618, () => false)).toEqual(['fscache', 'fanotify', 'fuse-blobs', 'fuse-tree']);
    expect(() => chooseBenchModes(['fanotify', 'nfs'], host618, () => true)).toThrow(/unknown mode nfs/);
  });
});

describe('figures', () => {
  it('headline figures in each unit', () => {
    expect(headline('seq', { wallMs: 500, ops: 10, bytes: 512 * 1048576, p50Us: null, p99Us: null })).toBeCloseTo(1024);
    expect(headline('rand1', { wallMs: 2000, ops: 10000, bytes: 0, p50Us: null, p99Us: null })).toBeCloseTo(5000);
    expect(headline('startup', { wallMs: 1500, ops: 1, bytes: 0, p50Us: null, p99Us: null })).toBeCloseTo(1.5);
  });
  it('vs local: local time / mode time per run, the median over runs; null for local and for missing runs', () => {
    const k = (m: string, w: Workload, p: string): string => `${m}\u0000${w}\u0000${p}`;
    const samples = new Map<string, BenchSample[]>([
      [k('local', 'seq', 'cold'), [sample(1, 100), sample(2, 100), sample(3, 100)]],
      [k('fanotify', 'seq', 'cold'), [sample(1, 200), sample(2, 400), sample(3, 100)]],
      [k('fuse-blobs', 'seq', 'cold'), [sample(2, 50)]],
    ]);
    const cells = buildCells(['local', 'fanotify', 'fuse-blobs'], ['seq'], samples);
    const cell = (m: string, p = 'cold') => cells.find((c) => c.mode === m && c.phase === p)!;
    expect(cell('local').vsLocal).toBeNull();
    expect(cell('fanotify').vsLocal).toBeCloseTo(0.5);
    expect(cell('fanotify').median!.wallMs).toBe(200);
    expect(cell('fuse-blobs').vsLocal).toBeCloseTo(2);
    expect(cell('fanotify', 'warm').median).toBeNull();
    expect(cell('fanotify', 'warm').vsLocal).toBeNull();
  });
  it('skopeo gets registry references as docker:// and transports as given', () => {
    expect(skopeoSource('127.0.0.1:5000/hello/python:orig')).toBe('docker://127.0.0.1:5000/hello/python:orig');
    expect(skopeoSource('localhost:5000/x')).toBe('docker://localhost:5000/x');
    expect(skopeoSource('oci:/var/tmp/layout:tag')).toBe('oci:/var/tmp/layout:tag');
    expect(skopeoSource('docker://quay.io/a/b:1')).toBe('docker://quay.io/a/b:1');
  });
});

describe('reports', () => {
  const report: BenchReport = {
    schema: BENCH_SCHEMA, startedAt: '2026-12-03T00:00:00Z', finishedAt: '2026-12-03T00:01:00Z',
    host: { kernel: '6.18', hostname: 'h', cpus: 2, memoryBytes: 1 << 30, node: 'v20', ondemand: '0.1.0', detect: { mode: 'fanotify', reason: 'r <b>', features: {} } },
    image: { ref: 'reg/img:<t>', manifestDigest: 'sha256:abc', storedBytes: 1, uncompressedBytes: 2, bootstrapBytes: 3, blobs: 1, files: 1, directories: 1, fileBytes: 1, largestFiles: ['a'], largestBytes: 1 },
    options: { runs: 1, modes: ['fanotify'], workloads: ['seq'], run: null, randReads: 10, largestFiles: 16 },
    modes: [{ mode: 'local', status: 'ok' }, { mode: 'fanotify', status: 'failed', error: 'EIO <x>', failedAt: { workload: 'seq', phase: 'warm', run: 1 } }],
    results: buildCells(['local', 'fanotify'], ['seq'], new Map([[`local\u0000seq\u0000cold`, [sample(1, 10)]], [`fanotify\u0000seq\u0000cold`, [sample(1, 20)]]])),
    comparePull: null, leftoverMounts: [],
  };
  it('the table names a failed mode with its error and where', () => {
    const text = renderText(report);
    expect(text).toMatch(/FAILED fanotify \(seq, warm, run 1\): EIO <x>/);
    expect(text).toMatch(/0\.50x/);
  });
  it('the HTML loads nothing from anywhere and escapes what it prints', () => {
    const html = renderHtml(report);
    expect(html).not.toMatch(/<script|<link|<img|url\(|@import/i);
    expect(html.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, '')).not.toMatch(/(src|href)=|https?:\/\//);
    expect(html).toContain('reg/img:&lt;t&gt;');
    expect(html).not.toContain('EIO <x>');
    expect(html.match(/<rect class="bar"/g)?.length).toBe(2);
  });
});
