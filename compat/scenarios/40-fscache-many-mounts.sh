# kernel: ondemand
# mode: fscache
# timeout: 400
# proves: one server (the product's fscache transport) serves 20 mounts of 10 images in its domain (each
#   image mounted twice: two fsids, so their blobs are shared cookies opened once), everything reads back
#   right, unwinding every mount unmounts it cleanly, and afterwards no anon fd is left (OPENs == CLOSEs,
#   fd count back to the pre-mount baseline).
mk_cache_dir /tmp/cache 512
args=""
want_blobs=10
for i in $(seq 1 10); do
  mkdir -p /tmp/src$i/d
  head -c $((200000 + i * 37000)) /dev/urandom > /tmp/src$i/d/data.bin
  echo "image $i" > /tmp/src$i/name
  mkfs.erofs --chunksize=65536 --blobdev=/tmp/blob$i /tmp/boot$i.erofs /tmp/src$i > /tmp/mkfs.log 2>&1 || { cat /tmp/mkfs.log; fail "mkfs.erofs $i"; }
  for copy in a b; do
    mkdir -p /tmp/mnt/$i$copy
    args="$args --image id=img$i$copy,ref=/tmp/boot$i.erofs,blob=/tmp/blob$i --mount /tmp/mnt/$i$copy:img$i$copy"
  done
done
$SERVE --cache-dir /tmp/cache $args --ready /tmp/ready --stats out/stats.json &
D=$!
wait_file /tmp/ready 240
cat /tmp/ready; echo
[ "$(grep -c ' erofs ' /proc/mounts)" = 20 ] || fail "expected 20 erofs mounts"
for i in $(seq 1 10); do
  (cd /tmp/src$i && find . -type f | sort | xargs sha256sum) > /tmp/want$i
  for copy in a b; do (cd /tmp/mnt/$i$copy && sha256sum -c --quiet /tmp/want$i) || fail "mount $i$copy differs"; done
done
ls /proc/$D/fd | wc -l
stop_daemon $D
grep -q ' erofs ' /proc/mounts && fail "erofs mounts left"
cat out/stats.json; echo
grep -q '"undoFailures":0' out/stats.json || fail "unmounting failed"
grep -q '"opens":30' out/stats.json || fail "expected 30 OPENs (20 bootstraps + 10 shared blobs)"
grep -q '"closes":30' out/stats.json || fail "expected 30 CLOSEs"
grep -q '"openObjects":0' out/stats.json || fail "objects still open"
grep -q '"readErrors":0' out/stats.json || fail "read errors"
base=$(sed 's/.*"fdsBeforeMount":\([0-9]*\).*/\1/' /tmp/ready)
now=$(sed 's/.*"fds":\([0-9]*\).*/\1/' out/stats.json)
[ "$now" -le "$base" ] || fail "fd leak: $now fds after unmount, $base before mounting"
note PASS
