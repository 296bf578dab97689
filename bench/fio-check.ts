/**
 * Issue #16 must-show 1: one `ondemand bench` run (runBench, the function the command calls) on the
 * Debian bookworm minbase image, built by `ondemand build` and pushed to a local Debian docker-registry,
 * compares every mode this host serves with local; right after each of its seq, rand1 and rand4
 * measurements in the warm and hot phases, `fio` (Debian's) does the same reads on the same mount in
 * the same state, and both figures are printed side by side:
 *   warm: the cache's files dropped from the page cache (as the bench's warm phase does before it
 *         mounts), and the file read, on the mount, dropped too, here, before fio starts: fio's own
 *         --invalidate=1 runs inside its timed window (td_io_open_file), which made its warm random
 *         figures lower by the time the drop takes;
 *   hot:  right after the bench's hot run, as is.
 * fio always runs with --invalidate=0.
 * fio jobs (psync, --readonly, --fadvise_hint=0: no POSIX_FADV_RANDOM, which would turn the kernel's
 * readahead off where the bench's reader, like most programs, leaves it on): seq = --rw=read --bs=1M over the file; rand1/rand4 = --rw=randread
 * --bs=4k --norandommap, numjobs 1 or 4, --io_size the bench's reads split over the jobs (fio's default,
 * one file's size, would stop a job after as many reads as the file has pages).
 * Figures: warm seq MiB/s = bytes / the sum of fio's per-read latency (its runtime is counted in whole
 * ms, too coarse for one 50 MiB read); hot seq: the bench reads the file over until it has read
 * HOT_SEQ_BYTES, and fio as many times (--loops), over its runtime; rand1 and rand4: fio's reads over its runtime. Rows: the median over the runs of the per-run
 * ratio bench/fio. The bench reads one file (--files 1: fio's multi-file jobs split a size
 * evenly over the files and pick files, not pages, at random, so only one file is the same work).
 *   make build && node dist/bench/fio-check.js [runs=3] [randReads=200000]
 */
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { resolveConfig } from '../src/config/resolve.js';
import { HOT_SEQ_BYTES, runBench, type MeasuredContext } from '../src/bench/run.js';
import { renderText } from '../src/bench/report-text.js';
import { UNITS } from '../src/bench/types.js';
import { evictReadOnlyFile } from '../src/native/fadvise.js';
import { runOps } from '../src/bench/ops.js';
import type { OpsSpec } from '../src/bench/ops-spec.js';
import { makeDebianTree } from '../test/helpers/trees.js';
import { median, runRegistryBench } from './service-daemon.js';

const exec = promisify(execFile);
const runs = Number(process.argv[2] ?? 3);
const randReads = Number(process.argv[3] ?? 200000);

interface FioRead {
  io_bytes: number;
  total_ios: number;
  runtime: number;
  iops: number;
  lat_ns: { mean: number };
}

async function fio(args: string[]): Promise<FioRead> {
  const { stdout } = await exec('fio', ['--output-format=json', '--readonly', '--ioengine=psync', '--fadvise_hint=0', ...args], { maxBuffer: 64 << 20 });
  const doc = JSON.parse(stdout.slice(stdout.indexOf('{'))) as { jobs: { read: FioRead }[] };
  return doc.jobs[0]!.read;
}

interface Row { mode: string; workload: string; phase: string; run: number; bench: number; fio: number; again: number | null }

runRegistryBench('fio-check', async ({ tmp, registry, setup }) => {
  // In the compat VM (fio-check-vm.ts) the host built the image: its tree and layout come from there.
  const tree = process.env.ONDEMAND_FIO_TREE ?? join(tmp, 'debian');
  let source = process.env.ONDEMAND_FIO_LAYOUT;
  if (source === undefined) {
    const why = makeDebianTree(tree);
    if (why !== undefined) throw new Error(`no Debian tree: ${why}`);
    source = `oci:${join(tmp, 'layout')}:min`;
    await setup.ok('build', tree, source);
  }
  const ref = `${registry.host}/bench/debian:min`;
  await setup.ok('push', '--insecure', source, ref);
  const rows: Row[] = [];
  const afterMeasure = async (m: MeasuredContext): Promise<void> => {
    if (m.phase === 'cold' || !['seq', 'rand1', 'rand4'].includes(m.workload)) return;
    const file = m.largest[0]!;
    if (m.phase === 'warm') {
      m.evict();
      evictReadOnlyFile(file);
    }
    let value: number;
    if (m.workload === 'seq' && m.phase === 'hot') {
      // As much as the bench's hot pass read (HOT_SEQ_BYTES, the file read over), over fio's runtime.
      const loops = Math.max(1, Math.ceil(HOT_SEQ_BYTES / statSync(file).size));
      const r = await fio(['--name=seq', `--filename=${file}`, '--rw=read', '--bs=1M', '--invalidate=0', `--loops=${loops}`]);
      value = r.io_bytes / 1048576 / (r.runtime / 1000);
    } else if (m.workload === 'seq') {
      const r = await fio(['--name=seq', `--filename=${file}`, '--rw=read', '--bs=1M', '--invalidate=0']);
      value = r.io_bytes / 1048576 / ((r.lat_ns.mean * r.total_ios) / 1e9);
    } else {
      const jobs = m.workload === 'rand1' ? 1 : 4;
      // --gtod_reduce: only reads over runtime are used, and fio's per-read time stamps and latency
      // accounting are fio's own cost (the bench's C reader takes two clock reads a read).
      const r = await fio(['--name=rand', `--filename=${file}`, '--rw=randread', '--bs=4k', '--norandommap', '--randrepeat=0', '--gtod_reduce=1', '--invalidate=0',
        `--numjobs=${jobs}`, '--group_reporting', `--io_size=${Math.floor(randReads / jobs) * 4096}`]);
      value = (r.total_ios * 1000) / r.runtime;
    }
    // Warm: the bench's own reader once more, after fio, from the same state (the caches dropped
    // again): the bench's first read of a new mount against a read of a mount used before.
    let again: number | null = null;
    if (m.phase === 'warm') {
      m.evict();
      evictReadOnlyFile(file);
      const jobs = m.workload === 'rand4' ? 4 : 1;
      const specs: OpsSpec[] = m.workload === 'seq'
        ? [{ op: 'seq', files: [file], blockSize: 1 << 20, passes: 1 }]
        : Array.from({ length: jobs }, (_, j) => ({ op: 'rand' as const, files: [file], reads: Math.floor(randReads / jobs), seed: 1000 + m.run * 16 + j }));
      const r = await runOps(specs, `again ${m.workload} on ${m.mountpoint}`);
      again = m.workload === 'seq' ? r.bytes / 1048576 / (r.wallMs / 1000) : (r.ops * 1000) / r.wallMs;
    }
    rows.push({ mode: m.mode, workload: m.workload, phase: m.phase, run: m.run, bench: m.sample.value, fio: value, again });
    process.stderr.write(`  fio ${m.workload} ${m.mode} ${m.phase}: ${value.toFixed(0)} ${UNITS[m.workload]} (bench ${m.sample.value.toFixed(0)})\n`);
  };
  const report = await runBench({
    image: ref, access: { insecure: true }, config: resolveConfig({ noFile: true }), modes: 'auto', workloads: ['seq', 'rand1', 'rand4'],
    runs, randReads, largestFiles: 1, workDir: tmp, progress: (l) => process.stderr.write(`${l}\n`), hooks: { afterMeasure },
  });
  process.stdout.write(renderText(report));
  const file = report.image.largestFiles[0]!;
  process.stdout.write(`\nfio on the same mounts: ${file} (${(statSync(join(tree, file)).size / 1048576).toFixed(1)} MiB), ${randReads} random reads; ${runs} run(s)\n`);
  process.stdout.write(`${'mode'.padEnd(11)} ${'workload'.padEnd(8)} ${'phase'.padEnd(5)} ${'unit'.padEnd(6)} ${'bench'.padStart(9)} ${'fio'.padStart(9)}  bench/fio (per run)          within 20 %   again/fio (warm: the bench's reader after fio)\n`);
  const keys = [...new Set(rows.map((r) => `${r.mode}|${r.workload}|${r.phase}`))];
  let inside = 0;
  for (const k of keys) {
    const rs = rows.filter((r) => `${r.mode}|${r.workload}|${r.phase}` === k);
    const ratios = rs.map((r) => r.bench / r.fio);
    const med = median(ratios);
    const ok = Math.abs(med - 1) <= 0.2;
    if (ok) inside++;
    const [mode, workload, phase] = k.split('|') as [string, 'seq', string];
    process.stdout.write(`${mode.padEnd(11)} ${workload.padEnd(8)} ${phase.padEnd(5)} ${UNITS[workload].padEnd(6)} ${median(rs.map((r) => r.bench)).toFixed(0).padStart(9)} ${median(rs.map((r) => r.fio)).toFixed(0).padStart(9)}  ${`${med.toFixed(2)}x (${ratios.map((x) => x.toFixed(2)).join(' ')})`.padEnd(27)} ${(ok ? 'yes' : 'NO').padEnd(13)} ${againText(rs)}\n`);
  }
  process.stdout.write(`within 20 % (median of the per-run ratios): ${inside} of ${keys.length} rows\n`);
});

/** The median of again/fio over the runs, when the rows have it. */
function againText(rs: Row[]): string {
  const ratios = rs.filter((r) => r.again !== null).map((r) => r.again! / r.fio);
  return ratios.length === 0 ? '' : `${median(ratios).toFixed(2)}x (${ratios.map((x) => x.toFixed(2)).join(' ')})`;
}
