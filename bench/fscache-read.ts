/**
 * Read throughput through erofs-over-fscache (our FscacheTransport) vs the same erofs image mounted from
 * local files (loop devices), inside the compat VM (TCG: absolute numbers are slow, ratios matter).
 * cold = first read (fscache: the daemon serves every READ); warm = after drop_caches (fscache: the data
 * is in the cachefiles cache file, no daemon involved); hot = page cache.
 *   node dist/bench/fscache-read.js
 */
import { ensureKernel, runInVm } from '../compat/vm.js';

const script = String.raw`
mk_cache_dir /tmp/cache 512
mkdir -p /tmp/src/d /tmp/mnt/fs /tmp/mnt/local
for i in 1 2 3 4 5 6 7 8; do head -c 4194304 /dev/urandom > /tmp/src/d/f$i; done
mkfs.erofs --chunksize=1048576 --blobdev=/tmp/blob1 /tmp/boot.erofs /tmp/src >/dev/null 2>&1 || fail mkfs
$SERVE --cache-dir /tmp/cache --image fsid=b1,bootstrap=/tmp/boot.erofs,blob=blob1:/tmp/blob1 --mount /tmp/mnt/fs:b1 --ready /tmp/ready &
D=$!
wait_file /tmp/ready 120
LB=$(losetup -f --show -r /tmp/blob1); LI=$(losetup -f --show -r /tmp/boot.erofs)
mount -t erofs -o ro,device=$LB $LI /tmp/mnt/local || fail "local mount"
rb() { "$NODE" "$DIST/compat/guest/readbench.js" "$@"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
for m in fs local; do
  drop; echo "{\"case\":\"$m seq cold\",\"r\":$(rb seq /tmp/mnt/$m)}" >> out/results.jsonl
  drop; echo "{\"case\":\"$m seq warm\",\"r\":$(rb seq /tmp/mnt/$m)}" >> out/results.jsonl
  echo "{\"case\":\"$m seq hot\",\"r\":$(rb seq /tmp/mnt/$m)}" >> out/results.jsonl
  drop; echo "{\"case\":\"$m rand warm\",\"r\":$(rb rand /tmp/mnt/$m 3000)}" >> out/results.jsonl
done
umount /tmp/mnt/fs; umount /tmp/mnt/local
stop_daemon $D
cat out/results.jsonl
`;

async function main(): Promise<void> {
  await ensureKernel('ondemand', (l) => process.stderr.write(`${l}\n`));
  const r = await runInVm({ kernel: 'ondemand', script, timeoutMs: 600_000 });
  if (r.rc !== 0) throw new Error(`bench VM failed (rc ${r.rc}):\n${r.stdout}\n${r.stderr.slice(-4000)}`);
  const rows = (r.out['results.jsonl'] ?? '').trim().split('\n').map((l) => JSON.parse(l) as { case: string; r: { bytes: number; ms: number } });
  const mbps = new Map(rows.map((x) => [x.case, x.r.bytes / 1048576 / (x.r.ms / 1000)]));
  process.stdout.write('case                 MiB/s     fscache/local\n');
  for (const [name, v] of mbps) {
    const [m, ...rest] = name.split(' ');
    const local = m === 'fs' ? mbps.get(['local', ...rest].join(' ')) : undefined;
    process.stdout.write(`${name.padEnd(20)} ${v.toFixed(1).padStart(8)}   ${local ? (v / local).toFixed(2) + 'x' : ''}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
