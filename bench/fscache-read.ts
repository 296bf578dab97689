/**
 * Read throughput of one image served three ways inside the compat VM (6.1 kernel with the on-demand
 * options; TCG, so absolute numbers are slow and only ratios matter), all through the real CLI:
 *   fscache    `ondemand mount --mode fscache` (erofs over cachefiles on-demand; daemon A)
 *   fuse-blobs `ondemand mount --mode fuse-blobs` (erofs on loop devices over our FUSE files; daemon B,
 *              its own cache dir, so both start cold; 6.1 has no FUSE passthrough)
 *   local      the same erofs bootstrap and blob as plain files on loop devices
 * cold = first read with the ondemand cache empty (fetch from an OCI layout + gunzip + verify);
 * warm = after drop_caches with the cache full (fscache: the cachefiles cache file, no daemon involved;
 * fuse-blobs: every read goes through the daemon); hot = page cache.
 *   node dist/bench/fscache-read.js
 */
import { ensureKernel, runInVm } from '../compat/vm.js';

const MODES = ['fs', 'fb', 'local'] as const;
const LABEL: Record<(typeof MODES)[number], string> = { fs: 'fscache', fb: 'fuse-blobs', local: 'local' };

const script = String.raw`
. "$REPO/compat/scenarios/registry.inc"
mk_cache_dir /tmp/cacheA 512; mk_cache_dir /tmp/cacheB 512
mkdir -p /tmp/src/d /tmp/mnt/fs /tmp/mnt/fb /tmp/mnt/local /tmp/runA /tmp/runB
for i in 1 2 3 4 5 6 7 8; do head -c 4194304 /dev/urandom > /tmp/src/d/f$i; done
$OD build /tmp/src oci:/tmp/layout:b > /tmp/build.log 2>&1 || { cat /tmp/build.log; fail "ondemand build"; }
odA() { ONDEMAND_RUN_DIR=/tmp/runA ONDEMAND_CACHE_DIR=/tmp/cacheA $OD "$@"; }
odB() { ONDEMAND_RUN_DIR=/tmp/runB ONDEMAND_CACHE_DIR=/tmp/cacheB $OD "$@"; }
odA mount --mode fscache --image oci:/tmp/layout:b /tmp/mnt/fs || fail "fscache mount"
odB mount --mode fuse-blobs --image oci:/tmp/layout:b /tmp/mnt/fb || fail "fuse-blobs mount"
rb() { "$NODE" "$DIST/compat/guest/readbench.js" "$@"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
row() { echo "{\"case\":\"$1\",\"r\":$2}" >> out/results.jsonl; }
run() { # mode
  drop; row "$1 seq cold" "$(rb seq /tmp/mnt/$1)"
  drop; row "$1 seq warm" "$(rb seq /tmp/mnt/$1)"
  row "$1 seq hot" "$(rb seq /tmp/mnt/$1)"
  drop; row "$1 rand warm" "$(rb rand /tmp/mnt/$1 3000)"
}
run fs; run fb
# local: the verified bootstrap and the (now complete) blob view from daemon A's cache, on loop devices.
cp /tmp/cacheA/bootstraps/* /tmp/boot.erofs && cp /tmp/cacheA/blobs/*.data /tmp/blob.data || fail "copy local files"
LB=$(losetup -f --show -r /tmp/blob.data); LI=$(losetup -f --show -r /tmp/boot.erofs)
mount -t erofs -o ro,device=$LB $LI /tmp/mnt/local || fail "local mount"
run local
(cd /tmp/src && find . -type f | sort | xargs sha256sum) > /tmp/want
for m in fs fb local; do (cd /tmp/mnt/$m && sha256sum -c --quiet /tmp/want) || fail "$m reads wrong bytes"; done
umount /tmp/mnt/local; losetup -d $LB; losetup -d $LI
odA umount /tmp/mnt/fs || fail "umount fscache"
odB umount /tmp/mnt/fb || fail "umount fuse-blobs"
cat out/results.jsonl
`;

async function main(): Promise<void> {
  await ensureKernel('ondemand', (l) => process.stderr.write(`${l}\n`));
  const r = await runInVm({ kernel: 'ondemand', script, timeoutMs: 900_000 });
  if (r.rc !== 0) throw new Error(`bench VM failed (rc ${r.rc}):\n${r.stdout}\n${r.stderr.slice(-4000)}`);
  const rows = (r.out['results.jsonl'] ?? '').trim().split('\n').map((l) => JSON.parse(l) as { case: string; r: { bytes: number; ms: number } });
  const mbps = new Map(rows.map((x) => [x.case, x.r.bytes / 1048576 / (x.r.ms / 1000)]));
  const cases = [...new Set(rows.map((x) => x.case.split(' ').slice(1).join(' ')))];
  const cell = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(1)).padStart(11);
  process.stdout.write(`${'case'.padEnd(10)}${MODES.map((m) => LABEL[m].padStart(11)).join('')}  MiB/s   fscache/local  fuse-blobs/local\n`);
  for (const c of cases) {
    const v = MODES.map((m) => mbps.get(`${m} ${c}`));
    const local = v[2];
    const ratio = (x: number | undefined): string => (x === undefined || local === undefined ? '-' : `${(x / local).toFixed(2)}x`);
    process.stdout.write(`${c.padEnd(10)}${v.map(cell).join('')}         ${ratio(v[0]).padStart(6)}  ${ratio(v[1]).padStart(14)}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
