/**
 * Read throughput of one image shape served three ways inside the compat VM (6.1 kernel with the
 * on-demand options; TCG, so absolute numbers are slow and only ratios matter). One guest process
 * (compat/guest/serve.ts) mounts all three with the shipped code: the cache backend with the daemon's
 * tuning, an in-process kernel broker, and
 *   fscache    fscacheTransport.mount (erofs over cachefiles on-demand)
 *   fuse-blobs fuseBlobsTransport.mount (erofs on loop devices over our FUSE files; 6.1 has no FUSE
 *              passthrough nor file-backed erofs)
 *   local      erofs mounted by the broker on loop devices over the cache's complete bootstrap and blob
 * Each column has its own image (same shape, other random bytes), so both ondemand columns start cold.
 * cold = first read with the ondemand cache empty (fetch from an OCI layout + gunzip + verify);
 * warm = after drop_caches with the cache full (fscache: the cachefiles cache file, no daemon involved;
 * fuse-blobs: every read goes through the daemon); hot = page cache. The reads run in another process
 * (compat/guest/readbench.ts), as a container's would.
 *   node dist/bench/fscache-read.js [files=8] [fileMiB=4] [randomReads=3000]
 */
import { ensureKernel, runInVm } from '../compat/vm.js';

const MODES = ['fs', 'fb', 'local'] as const;
const LABEL: Record<(typeof MODES)[number], string> = { fs: 'fscache', fb: 'fuse-blobs', local: 'local' };
const files = Number(process.argv[2] ?? 8);
const fileMiB = Number(process.argv[3] ?? 4);
const randomReads = Number(process.argv[4] ?? 3000);

const script = String.raw`
OD="$NODE $REPO/bin/ondemand"
mk_cache_dir /tmp/cache 1024
for m in fs fb local; do
  mkdir -p /tmp/src-$m/d /tmp/mnt/$m
  for i in $(seq 1 ${files}); do head -c $((${fileMiB} * 1048576)) /dev/urandom > /tmp/src-$m/d/f$i; done
  $OD build /tmp/src-$m oci:/tmp/layout-$m:b > /tmp/build.log 2>&1 || { cat /tmp/build.log; fail "ondemand build"; }
done
$SERVE --cache-dir /tmp/cache \
  --image id=fs,ref=oci:/tmp/layout-fs:b --mount /tmp/mnt/fs:fs:fscache \
  --image id=fb,ref=oci:/tmp/layout-fb:b --mount /tmp/mnt/fb:fb:fuse-blobs \
  --image id=local,ref=oci:/tmp/layout-local:b --mount /tmp/mnt/local:local:local --ready /tmp/ready &
S=$!
wait_file /tmp/ready 600
grep -E ' (erofs|fuse[.a-z]*) ' /proc/mounts
rb() { "$NODE" "$DIST/compat/guest/readbench.js" "$@"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
row() { echo "{\"case\":\"$1\",\"r\":$2}" >> out/results.jsonl; }
run() { # mode
  drop; row "$1 seq cold" "$(rb seq /tmp/mnt/$1)"
  drop; row "$1 seq warm" "$(rb seq /tmp/mnt/$1)"
  row "$1 seq hot" "$(rb seq /tmp/mnt/$1)"
  drop; row "$1 rand warm" "$(rb rand /tmp/mnt/$1 ${randomReads})"
}
run fs; run fb; run local
for m in fs fb local; do
  (cd /tmp/src-$m && find . -type f | sort | xargs sha256sum) > /tmp/want
  (cd /tmp/mnt/$m && sha256sum -c --quiet /tmp/want) || fail "$m reads wrong bytes"
done
stop_daemon $S
grep -q ' erofs ' /proc/mounts && fail "mounts left after the server unmounted"
cat out/results.jsonl
`;

async function main(): Promise<void> {
  const kernel = { version: '6.1', variant: 'ondemand' } as const;
  await ensureKernel(kernel, (l) => process.stderr.write(`${l}\n`));
  const r = await runInVm({ kernel, script, timeoutMs: 900_000 });
  if (r.rc !== 0) throw new Error(`bench VM failed (rc ${r.rc}):\n${r.stdout}\n${r.stderr.slice(-4000)}`);
  const rows = (r.out['results.jsonl'] ?? '').trim().split('\n').map((l) => JSON.parse(l) as { case: string; r: { bytes: number; ms: number } });
  const mbps = new Map(rows.map((x) => [x.case, x.r.bytes / 1048576 / (x.r.ms / 1000)]));
  const cases = [...new Set(rows.map((x) => x.case.split(' ').slice(1).join(' ')))];
  const cell = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(1)).padStart(11);
  process.stdout.write(`${files} files of ${fileMiB} MiB per image, ${randomReads} random 4 KiB reads\n`);
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
