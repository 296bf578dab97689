/**
 * `ondemand bench` end to end on a small image from a real registry (issue #16): one call with every
 * workload (start-up included) and --runs 1 measures every mode `detect` says this host can serve and
 * `local`, every phase, with figures that make sense (cold fetches, warm does not); its JSON follows the
 * schema; no mount is left; and its HTML report, rendered by headless Chromium with no network, draws
 * a chart per workload with a bar per mode and phase (must-show 3).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readMountInfo } from '../../src/util/mountinfo.js';
import { MODE_COLOURS } from '../../src/bench/report-html.js';
import { PHASES, WORKLOADS, type BenchReport } from '../../src/bench/types.js';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { cliBuilt, cliPath, detectHere, makeHarness, type Harness } from '../mount/harness.js';
import { CHROMIUM, countColour, render } from './chromium.js';
import { BUSYBOX, buildAndPush, makeBenchTree } from './image.js';

const ready = needs('ondemand bench', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'], [haveCommand('docker-registry'), 'docker-registry'],
  [existsSync(BUSYBOX), 'busybox-static'], [haveCommand('unshare'), 'unshare (util-linux)']);

function runCli(h: Harness, args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cliPath, ...args], { env: h.env, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 99) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(!ready)('ondemand bench', () => {
  let h: Harness;
  let reg: TestRegistry;
  let work: { dir: string; remove: () => void };
  let ref: string;
  let report: BenchReport;
  let html: string;

  beforeAll(async () => {
    h = makeHarness('bench');
    work = makeTempDir('bench-work');
    reg = await startRegistry();
    makeBenchTree(join(work.dir, 'tree'));
    ref = `${reg.host}/bench/small:t`;
    await buildAndPush(h, join(work.dir, 'tree'), join(work.dir, 'layout'), ref);
    html = join(work.dir, 'report.html');
  }, 300_000);
  afterAll(async () => {
    await h.cleanup();
    await reg?.stop();
    work.remove();
  });

  it('measures every mode this host serves and local, every workload and phase, and leaves no mount', async () => {
    const benchDir = join(work.dir, 'benchdir');
    mkdirSync(benchDir);
    const r = await runCli(h, ['bench', '--insecure', '--image', ref, '--runs', '1', '--rand-reads', '2000', '--json', '--report', html,
      '--run', 'cat /data/medium > /dev/null; echo ready', '--ready', '^ready$', '--work-dir', benchDir], 600_000);
    expect(r.stderr).toMatch(/run 1\/1 seq local cold/);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    report = JSON.parse(r.stdout) as BenchReport;
    expect(report.schema).toBe('ondemand-bench/1');

    // Every mode detect finds usable (with this build's transports), each completed.
    const detected = detectHere();
    const expected = ['local', ...(report.options.modes)];
    expect(report.modes.map((m) => m.mode)).toEqual(expected);
    expect(report.modes.every((m) => m.status === 'ok')).toBe(true);
    expect(report.options.modes).toContain(detected?.mode ?? 'fanotify');
    expect(report.options.modes.length).toBeGreaterThanOrEqual(2);
    expect(report.options.workloads).toEqual([...WORKLOADS]);
    expect(report.host.detect.mode).toBe(detected?.mode);
    expect(report.image.files).toBe(2 + 100 + 1);

    for (const mode of expected) {
      for (const w of WORKLOADS) {
        for (const p of PHASES) {
          const c = report.results.find((x) => x.mode === mode && x.workload === w && x.phase === p);
          expect(c?.samples.length, `${mode} ${w} ${p}`).toBe(1);
          expect(c!.median!.value, `${mode} ${w} ${p}`).toBeGreaterThan(0);
          if (mode === 'local') expect(c!.vsLocal).toBeNull();
          else expect(c!.vsLocal).toBeGreaterThan(0);
        }
      }
      if (mode === 'local') continue;
      // Cold reads fetch; warm and hot reads of the complete cache fetch nothing.
      const cell = (w: string, p: string) => report.results.find((x) => x.mode === mode && x.workload === w && x.phase === p)!.median!;
      expect(cell('seq', 'cold').fetchedBytes).toBeGreaterThan(0);
      expect(cell('seq', 'cold').daemonCpuMs).toBeGreaterThanOrEqual(0);
      expect(cell('seq', 'warm').fetchedBytes).toBe(0);
      expect(cell('tree', 'hot').fetchedBytes).toBe(0);
      expect(cell('startup', 'cold').mountMs).toBeGreaterThan(0);
      expect(cell('rand1', 'warm').p99Us).toBeGreaterThan(0);
    }
    expect(report.results.find((x) => x.workload === 'startup' && x.mode === 'local' && x.phase === 'hot')!.samples[0]!.ended).toBe('ready');
    expect(report.leftoverMounts).toEqual([]);
    expect(readMountInfo().filter((m) => m.mountpoint.startsWith(work.dir))).toEqual([]);
    expect(readdirSync(benchDir)).toEqual([]);
  }, 900_000);

  it('exits 1 when a mode failed, after printing its results', async (ctx) => {
    if (detectHere()?.features.cachefilesOndemand?.supported) ctx.skip('fscache works on this kernel: no mode here is sure to fail');
    const benchDir = join(work.dir, 'benchdir-fail');
    mkdirSync(benchDir);
    const r = await runCli(h, ['bench', '--insecure', '--image', ref, '--modes', 'fscache', '--runs', '1', '--workload', 'stat', '--json', '--quiet', '--work-dir', benchDir], 300_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ondemand: 1 mode\(s\) failed: fscache/);
    const doc = JSON.parse(r.stdout) as BenchReport;
    expect(doc.modes.map((m) => [m.mode, m.status])).toEqual([['local', 'ok'], ['fscache', 'failed']]);
    expect(readMountInfo().filter((m) => m.mountpoint.startsWith(benchDir))).toEqual([]);
  }, 300_000);

  it('writes a self-contained HTML report that Chromium renders with its charts, with no network', async (ctx) => {
    if (!report) ctx.skip('the bench run above failed');
    if (!needs('bench report in Chromium', [existsSync(CHROMIUM), 'chromium (Debian)'])) ctx.skip('no chromium');
    const text = readFileSync(html, 'utf8');
    // Nothing to load from anywhere: no script, no external reference (the SVG namespace is a name, not a fetch).
    expect(text).not.toMatch(/<script|<link|<img|<iframe|url\(|@import/i);
    expect(text.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, '')).not.toMatch(/(src|href)=|https?:\/\//);
    const modes = report.modes.map((m) => m.mode);
    const { png, dom } = await render(html, 1000, 7000, work.dir);
    // The DOM after rendering: a chart per workload, a bar per mode and phase in each.
    expect(dom.match(/<svg class="chart"/g)?.length).toBe(WORKLOADS.length);
    expect(dom.match(/<rect class="bar"/g)?.length).toBe(WORKLOADS.length * PHASES.length * modes.length);
    // The screenshot: every mode's colour is drawn (its bars), well beyond the legend's swatch.
    for (const mode of modes) {
      const pixels = countColour(png, MODE_COLOURS[mode]!);
      process.stderr.write(`report: ${mode} ${MODE_COLOURS[mode]} ${pixels} pixels\n`);
      expect(pixels, mode).toBeGreaterThan(2000);
    }
  }, 300_000);
});
