/**
 * Issue #16 must-show 5: HelloBench-style start-up, lazily against a full pull. Three images built here
 * from Debian packages (bench/startup-trees.sh: the bookworm minbase tarball + `apt-get install` in a
 * chroot from the Debian mirror, nothing else from the network):
 *   python  python3 -c 'print("hello")'                       (until it exits)
 *   node    node -e 'console.log("ready")'                    (Debian's nodejs; until it exits)
 *   nginx   nginx in the foreground, its notices on stderr    (until "start worker process")
 * Each tree becomes an ordinary OCI image (umoci: one gzip layer), pushed to a local Debian
 * docker-registry as `:orig`; `ondemand convert` makes the ondemand image from it (`:od`, pushed to the
 * same registry). Then one `ondemand bench --workload startup --run CMD --compare-pull REG/...:orig` per
 * image through the shipped CLI: every mode this host serves and local, cold/warm/hot, and the full
 * pull (skopeo copy of `:orig` + umoci unpack + the same command), runs interleaved.
 * With `trace` as third argument, also start-up traces (issue #17): per image, a cold start-up on
 * an empty cache records one (fanotify, `prefetch.trace_seconds`), `ondemand convert --prefetch-trace`
 * puts it into a second ondemand image (`:od-trace`), and a second `ondemand bench` of that image
 * (cold/warm/hot, no pull) shows cold start-up with the image's trace against without and warm.
 *   make build && node dist/bench/startup.js [runs=3] [images=python,node,nginx] [trace]
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runStartup } from '../src/bench/startup.js';
import type { BenchReport } from '../src/bench/types.js';
import { cliPath, makeHarness, repoRoot, type Harness } from '../test/mount/harness.js';
import { runRegistryBench } from './service-daemon.js';

const exec = promisify(execFile);
const runs = Number(process.argv[2] ?? 3);
const wanted = (process.argv[3] ?? 'python,node,nginx').split(',');
const withTraces = process.argv[4] === 'trace';
const TREES = process.env.ONDEMAND_STARTUP_TREES ?? '/var/tmp/ondemand-cache';
const MiB = 1024 * 1024;
/** Harter et al., "Slacker: Fast Distribution with Lazy Docker Containers" (FAST '16): 6.4 % of an image's data is read at start-up. */
const SLACKER_FRACTION = 0.064;

interface HelloImage { name: string; command: string; ready?: string }
const IMAGES: HelloImage[] = [
  { name: 'python', command: 'python3 -c \'print("hello")\'' },
  { name: 'node', command: 'node -e \'console.log("ready")\'' },
  { name: 'nginx', command: 'nginx -g \'daemon off; error_log stderr notice;\'', ready: 'start worker process' },
];

runRegistryBench('startup', async ({ tmp, registry, setup }) => {
  const out = (s: string): void => void process.stdout.write(s);
  const results: { image: HelloImage; report: BenchReport; traced?: BenchReport; traceBytes?: number }[] = [];
  const bench = async (args: string[]): Promise<BenchReport> => {
    process.stderr.write(`ondemand ${args.join(' ')}\n`);
    const r = await new Promise<{ code: number; stdout: string }>((resolve) => {
      const child = execFile(process.execPath, [cliPath, ...args], { env: setup.env, timeout: 3_600_000, maxBuffer: 64 << 20 }, (err, stdout) => {
        resolve({ code: err ? 1 : 0, stdout });
      });
      child.stderr?.pipe(process.stderr);
    });
    if (r.stdout.trim() === '') throw new Error(`ondemand ${args.join(' ')} failed (exit ${r.code})`);
    return JSON.parse(r.stdout) as BenchReport;
  };
  for (const image of IMAGES.filter((i) => wanted.includes(i.name))) {
    const tar = join(TREES, `hello-${image.name}.tar`);
    if (!existsSync(tar)) execFileSync('bash', [join(repoRoot, 'bench', 'startup-trees.sh'), image.name, tar], { stdio: 'inherit' });
    // The ordinary image: umoci's new image, the tree unpacked into its bundle, repacked as one gzip layer.
    const layout = join(tmp, `oci-${image.name}`);
    const bundle = join(tmp, `bundle-${image.name}`);
    await exec('umoci', ['init', '--layout', layout]);
    await exec('umoci', ['new', '--image', `${layout}:base`]);
    await exec('umoci', ['unpack', '--image', `${layout}:base`, bundle]);
    await exec('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', tar, '-C', join(bundle, 'rootfs')]);
    await exec('umoci', ['repack', '--image', `${layout}:${image.name}`, bundle]);
    rmSync(bundle, { recursive: true, force: true });
    const orig = `${registry.host}/hello/${image.name}:orig`;
    const od = `${registry.host}/hello/${image.name}:od`;
    await exec('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:${image.name}`, `docker://${orig}`]);
    rmSync(layout, { recursive: true, force: true });
    await setup.ok('convert', '--insecure', orig, od);
    process.stderr.write(`${image.name}: ${orig} converted to ${od}\n`);
    const workDir = join(tmp, 'work');
    mkdirSync(workDir, { recursive: true });
    const common = ['--workload', 'startup', '--runs', String(runs), '--json', '--run', image.command, ...(image.ready ? ['--ready', image.ready] : []), '--work-dir', workDir];
    const report = await bench(['bench', '--insecure', '--image', od, ...common, '--compare-pull', orig]);
    if (!withTraces) {
      results.push({ image, report });
      continue;
    }
    const traceFile = join(tmp, `trace-${image.name}.json`);
    const traceBytes = await recordTrace(od, image, join(tmp, `rec-${image.name}`), traceFile);
    const odTrace = `${registry.host}/hello/${image.name}:od-trace`;
    await setup.ok('convert', '--insecure', '--prefetch-trace', traceFile, orig, odTrace);
    const traced = await bench(['bench', '--insecure', '--image', odTrace, '--modes', 'fanotify,fuse-blobs', ...common]);
    results.push({ image, report, traced, traceBytes });
  }

  out(`\nstartup: ${runs} run(s) per image, medians; lazy = cold mount + run (empty cache); pull = skopeo copy + umoci unpack + run\n`);
  for (const { image, report } of results) {
    const cp = report.comparePull!;
    const img = report.image;
    out(`\n${image.name}: ${image.command}${image.ready ? ` until /${image.ready}/` : ''}\n`);
    out(`  image: ${(img.storedBytes / MiB).toFixed(1)} MiB stored (ondemand, gzip frames), ${(img.fileBytes / MiB).toFixed(1)} MiB of files, ${img.files} files\n`);
    if (cp.median) out(`  full pull: ${(cp.median.totalMs / 1000).toFixed(3)} s (copy ${(cp.median.copyMs / 1000).toFixed(3)}, unpack ${(cp.median.unpackMs / 1000).toFixed(3)}, run ${(cp.median.runMs / 1000).toFixed(3)})\n`);
    if (cp.error) out(`  full pull FAILED: ${cp.error}\n`);
    out(`  ${'mode'.padEnd(11)} ${'lazy s'.padStart(7)} ${'(mount'.padStart(7)} ${'+ run)'.padStart(7)} ${'x pull'.padStart(7)} ${'warm s'.padStart(7)} ${'hot s'.padStart(7)} ${'fetched'.padStart(9)} ${'of image'.padStart(8)}\n`);
    for (const mode of report.modes) {
      const cell = (phase: string) => report.results.find((c) => c.mode === mode.mode && c.workload === 'startup' && c.phase === phase)?.median;
      const cold = cell('cold');
      const m = cp.modes.find((x) => x.mode === mode.mode);
      if (!cold) {
        out(`  ${mode.mode.padEnd(11)} FAILED: ${mode.error ?? ''}\n`);
        continue;
      }
      const lazy = (cold.mountMs ?? 0) + cold.wallMs;
      out(`  ${mode.mode.padEnd(11)} ${(lazy / 1000).toFixed(3).padStart(7)} ${((cold.mountMs ?? 0) / 1000).toFixed(3).padStart(7)} ${(cold.wallMs / 1000).toFixed(3).padStart(7)} `
        + `${m?.ratio != null ? `${m.ratio.toFixed(3)}x` : '-'.padStart(6)} ${((cell('warm')?.wallMs ?? 0) / 1000).toFixed(3).padStart(7)} ${((cell('hot')?.wallMs ?? 0) / 1000).toFixed(3).padStart(7)} `
        + `${mode.mode === 'local' ? '-'.padStart(9) : `${(cold.fetchedBytes / MiB).toFixed(1)} MiB`.padStart(9)} ${m?.fetchedFraction != null ? `${(m.fetchedFraction * 100).toFixed(1)} %`.padStart(8) : '-'.padStart(8)}\n`);
    }
  }
  if (withTraces) {
    out(`\nstart-up traces: cold start-up of the image carrying its trace (:od-trace), against the same image without (:od) and warm (medians)\n`);
    for (const { image, report, traced, traceBytes } of results) {
      if (!traced) continue;
      const pullMs = report.comparePull?.median?.totalMs;
      out(`\n${image.name}: trace of ${((traceBytes ?? 0) / MiB).toFixed(1)} MiB\n`);
      out(`  ${'mode'.padEnd(11)} ${'no trace'.padStart(9)} ${'x pull'.padStart(7)} ${'trace'.padStart(9)} ${'x pull'.padStart(7)} ${'warm'.padStart(9)} ${'requests'.padStart(14)}\n`);
      for (const mode of traced.modes) {
        const cell = (r: BenchReport, phase: string) => r.results.find((c) => c.mode === mode.mode && c.workload === 'startup' && c.phase === phase)?.median;
        const without = cell(report, 'cold');
        const withTrace = cell(traced, 'cold');
        if (!without || !withTrace) continue;
        const lazy = (c: typeof without): number => (c.mountMs ?? 0) + c.wallMs;
        const x = (ms: number): string => (pullMs ? `${(ms / pullMs).toFixed(3)}x` : '-').padStart(7);
        out(`  ${mode.mode.padEnd(11)} ${`${(lazy(without) / 1000).toFixed(3)} s`.padStart(9)} ${x(lazy(without))} ${`${(lazy(withTrace) / 1000).toFixed(3)} s`.padStart(9)} ${x(lazy(withTrace))} `
          + `${`${((cell(report, 'warm')?.wallMs ?? 0) / 1000).toFixed(3)} s`.padStart(9)} ${`${without.fetchedRequests} -> ${withTrace.fetchedRequests}`.padStart(14)}\n`);
      }
    }
  }
  out(`\ntarget (issue #16): lazy start-up <= 0.2x the full pull for every image; Slacker (FAST '16) found ${(SLACKER_FRACTION * 100).toFixed(1)} % of an image read at start-up\n`);
});

/**
 * A start-up trace of `image`: one cold fanotify mount over an empty cache runs the command (the
 * daemon records the first reads), then `trace export`. Returns the bytes the trace names.
 */
async function recordTrace(od: string, image: HelloImage, scratch: string, file: string): Promise<number> {
  const h: Harness = makeHarness(`startup-trace-${image.name}`, { ONDEMAND_PREFETCH_TRACE_SECONDS: '30' });
  try {
    const mp = h.mountpoint();
    await h.ok('mount', '--insecure', '--mode', 'fanotify', '--image', od, mp);
    await runStartup(mp, scratch, { command: image.command, ready: image.ready ? new RegExp(image.ready) : null, timeoutMs: 120_000 });
    await h.ok('umount', mp); // writes the trace
    const [t] = JSON.parse(await h.ok('trace', 'ls', '--json')) as { manifestDigest: string; bytes: number }[];
    if (!t) throw new Error(`no start-up trace recorded for ${od}`);
    writeFileSync(file, await h.ok('trace', 'export', t.manifestDigest));
    return t.bytes;
  } finally {
    await h.cleanup();
  }
}
