/**
 * `ondemand bench` inside the compat VM (issue #16 must-show 2's harness): the 6.1 kernel with
 * cachefiles on-demand, under QEMU, so the kernel path of older kernels (fscache) is compared with
 * fuse-blobs and local by the same command. In the guest: Debian's docker-registry on 127.0.0.1
 * (compat/scenarios/registry.inc), a small tree built and pushed with the CLI, then
 *   ondemand bench --insecure --image REG/bench:small --runs R --workload W --json --work-dir <ext4 dir>
 * (the bench's daemon needs its cache dir on ext4 for cachefiles; the guest's /tmp is tmpfs). The JSON
 * comes back through the share and is printed here as the table; `--report FILE` writes the HTML on
 * the host (no browser in the guest). TCG: absolute figures are slow, read the ratios.
 *   make build && node dist/bench/bench-vm.js [runs=1] [workloads=seq,rand1,stat,readdir,tree] [report.html]
 */
import { writeFileSync } from 'node:fs';
import { renderHtml } from '../src/bench/report-html.js';
import { renderText } from '../src/bench/report-text.js';
import type { BenchReport } from '../src/bench/types.js';
import { ensureKernel, runInVm } from '../compat/vm.js';

const runs = Number(process.argv[2] ?? 1);
const workloads = process.argv[3] ?? 'seq,rand1,stat,readdir,tree';
const report = process.argv[4];

const script = String.raw`
. "$REPO/compat/scenarios/registry.inc"
start_registry 1536
mkdir -p /tmp/src/bin /tmp/src/data /tmp/src/small
cp /bin/busybox /tmp/src/bin/ 2>/dev/null || cp /bin/ls /tmp/src/bin/
head -c 8388608 /dev/urandom > /tmp/src/data/big
head -c 3145728 /dev/urandom > /tmp/src/data/medium
for d in 0 1 2 3; do mkdir -p /tmp/src/small/d$d; for f in $(seq 1 25); do head -c $((f * 300)) /dev/urandom > /tmp/src/small/d$d/f$f; done; done
build_push /tmp/src bench:small
mkdir -p /tmp/cache/bench-work
$OD detect
$OD bench --insecure --image "$REG/bench:small" --runs ${runs} --workload ${workloads} --rand-reads 1000 --json --work-dir /tmp/cache/bench-work > out/bench.json 2> out/bench.err
rc=$?
tail -40 out/bench.err
grep -E ' (erofs|fuse[.a-z]*) ' /proc/mounts | grep bench-work && fail "mounts left under the bench's work dir"
[ -s out/bench.json ] || fail "ondemand bench wrote no JSON (exit $rc)"
note "ondemand bench exit $rc"
`;

async function main(): Promise<void> {
  const kernel = { version: '6.1', variant: 'ondemand' } as const;
  await ensureKernel(kernel, (l) => process.stderr.write(`${l}\n`));
  const r = await runInVm({ kernel, script, timeoutMs: 3_600_000 });
  process.stderr.write(r.stdout.split('\n').filter((l) => l.startsWith('== ') || l.startsWith('run ') || l.startsWith('bench')).join('\n') + '\n');
  const json = r.out['bench.json'];
  if (r.rc !== 0 || json === undefined) throw new Error(`bench VM failed (rc ${r.rc}):\n${r.stdout.slice(-6000)}\n${r.stderr.slice(-3000)}`);
  const doc = JSON.parse(json) as BenchReport;
  process.stdout.write(`in the compat VM (${Math.round(r.durationMs / 1000)} s):\n${renderText(doc)}`);
  if (report !== undefined) writeFileSync(report, renderHtml(doc));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
