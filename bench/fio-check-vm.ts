/**
 * Issue #16 must-show 2: fio-check (bench/fio-check.ts: one `ondemand bench` through runBench, fio on
 * the same mounts right after each measurement) inside the compat VM, on the 6.1 kernel with
 * cachefiles on-demand, so fscache is checked against fio as the host's modes are. The host builds the
 * Debian minbase image (the guest sees the host's / read-only over 9p, so it reads the tree and the OCI
 * layout where the host wrote them); in the guest fio-check runs with its registry, work dir and the
 * bench's cache on an ext4 dir (cachefiles needs one; the guest's /tmp is tmpfs), and Debian's fio is
 * the host's binary. TCG: absolute figures are slow; bench and fio are measured in the same guest.
 *   make build && node dist/bench/fio-check-vm.js [runs=3] [randReads=20000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureKernel, runInVm } from '../compat/vm.js';
import { makeDebianTree } from '../test/helpers/trees.js';
import { makeHarness } from '../test/mount/harness.js';

const runs = Number(process.argv[2] ?? 3);
const randReads = Number(process.argv[3] ?? 20000);

async function main(): Promise<void> {
  const dir = mkdtempSync('/var/tmp/ondemand-bench-fio-vm-');
  const setup = makeHarness('bench-fio-vm-setup');
  try {
    const tree = join(dir, 'debian');
    const why = makeDebianTree(tree);
    if (why !== undefined) throw new Error(`no Debian tree: ${why}`);
    const layout = `oci:${join(dir, 'layout')}:min`;
    await setup.ok('build', tree, layout);
    const script = String.raw`
. "$REPO/compat/scenarios/registry.inc"
mk_cache_dir /tmp/cache 3072
export ONDEMAND_TEST_TMP=/tmp/cache ONDEMAND_FIO_TREE=${tree} ONDEMAND_FIO_LAYOUT=${layout}
$NODE $DIST/bench/fio-check.js ${runs} ${randReads} > out/fio-check.txt 2> out/fio-check.err
rc=$?
tail -30 out/fio-check.err
grep -E ' (erofs|fuse[.a-z]*) ' /proc/mounts | grep /tmp/cache && fail "mounts left under the bench's work dir"
[ "$rc" = 0 ] || fail "fio-check exit $rc"
note "fio-check done"
`;
    const kernel = { version: '6.1', variant: 'ondemand' } as const;
    await ensureKernel(kernel, (l) => process.stderr.write(`${l}\n`));
    const r = await runInVm({ kernel, script, timeoutMs: 3 * 3_600_000, memMiB: 4096 });
    const text = r.out['fio-check.txt'];
    if (r.rc !== 0 || text === undefined) throw new Error(`fio-check VM failed (rc ${r.rc}):\n${r.stdout.slice(-6000)}\n${r.stderr.slice(-3000)}`);
    process.stdout.write(`in the compat VM (Linux 6.1, QEMU TCG, ${Math.round(r.durationMs / 1000)} s):\n${text}`);
  } finally {
    await setup.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
