# kernel: ondemand
# mode: fscache
# timeout: 900
# proves: the real daemon in fscache mode survives SIGKILL of its worker during a cold
#   `tar -c MNT | sha256sum`: the supervisor keeps /dev/cachefiles open, restarts the worker, which
#   re-registers every mounted image, writes `restore` and answers the re-delivered OPEN/READs; the
#   checksum equals the source's, no read failed, and `ondemand umount` is clean. Two images are mounted,
#   so the restart must hold the device back until both are registered again.
. "$REPO/compat/scenarios/registry.inc"
start_registry 1024
mkdir -p /tmp/s1/d /tmp/s2 /tmp/mnt/a /tmp/mnt/b
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do head -c 4194304 /dev/urandom > /tmp/s1/d/file$i; done
seq 1 400000 > /tmp/s1/seq.txt; ln -s seq.txt /tmp/s1/link
head -c 4194304 /dev/urandom > /tmp/s2/other.bin
build_push /tmp/s1 x:one
build_push /tmp/s2 x:two
$OD mount --insecure --mode fscache --image "$REG/x:one" /tmp/mnt/a || fail "mount one"
$OD mount --insecure --mode fscache --image "$REG/x:two" /tmp/mnt/b || fail "mount two"
tarsum() { tar -C "$1" -c --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner . | sha256sum | cut -d' ' -f1; }
want=$(tarsum /tmp/s1)
worker=$($OD status --json | "$NODE" -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).daemon.workerPid))")
[ -n "$worker" ] && kill -0 "$worker" || fail "no worker pid in status"

( tarsum /tmp/mnt/a > /tmp/got; echo $? > /tmp/got.rc ) 2> /tmp/tar.err &
R=$!
# Kill once the read is well under way: some bytes fetched, not all.
i=0
while :; do
  f=$(fetched /tmp/mnt/a); [ "${f:-0}" -gt 2000000 ] 2>/dev/null && break
  i=$((i+1)); [ "$i" -gt 300 ] && fail "the cold read made no progress"; sleep 0.2
done
[ -s /tmp/got.rc ] && fail "the read finished before the kill: nothing was in flight"
kill -KILL "$worker"
note "worker $worker killed after $f bytes fetched"
wait $R
cat /tmp/tar.err
[ "$(cat /tmp/got.rc)" = 0 ] || fail "tar failed after the worker was killed"
[ "$(cat /tmp/got)" = "$want" ] || fail "checksum after the restart differs: $(cat /tmp/got) != $want"
note "checksum right after the restart: $want"
$OD status > /tmp/status.txt || fail "status after the restart"
cat /tmp/status.txt
new=$($OD status --json | "$NODE" -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const d=JSON.parse(s).daemon;console.log(d.workerPid+' '+d.workerRestarts)})")
note "worker now: pid restarts = $new"
[ "${new%% *}" != "$worker" ] || fail "the worker was not restarted"
[ "$(tarsum /tmp/s2)" = "$(tarsum /tmp/mnt/b)" ] || fail "the second image reads wrong after the restart"
grep -q 'FAILED\|Input/output error' /tmp/tar.err && fail "reads failed"
$OD umount /tmp/mnt/a || fail "umount one"
$OD umount /tmp/mnt/b || fail "umount two"
grep -q ' /tmp/mnt/' /proc/mounts && fail "mounts left"
note PASS
