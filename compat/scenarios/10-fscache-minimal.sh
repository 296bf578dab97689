# kernel: ondemand
# mode: fscache
# timeout: 240
# proves: an erofs image (mkfs.erofs --chunksize --blobdev) mounted by the product's fscache transport
#   (bootstrap and blob through the cache backend and the local fetcher, fsid + device= tags, mount on
#   the libuv pool, not the serving thread): every file equals the source (sha256); unwinding the mount's
#   undo stack unmounts it and delivers CLOSE for both objects; no busy loop; detection says supported.
note "detect on the on-demand kernel"
"$NODE" "$DIST/compat/guest/detect.js" > out/detect.json || fail "detect crashed"
cat out/detect.json
grep -q '"supported":true' out/detect.json || fail "detection says unsupported on the on-demand kernel"

mk_cache_dir /tmp/cache
mkdir -p /tmp/src/dir/sub /tmp/img /tmp/mnt/a
head -c 3145728 /dev/urandom > /tmp/src/big.bin
head -c 1500000 /dev/urandom > /tmp/src/dir/odd-size.bin
seq 1 200000 > /tmp/src/dir/text.txt
for i in $(seq 1 30); do echo "small file $i" > /tmp/src/dir/sub/f$i; done
: > /tmp/src/empty
ln -s dir/text.txt /tmp/src/link
mkfs.erofs --chunksize=1048576 --blobdev=/tmp/img/blob1 /tmp/img/boot.erofs /tmp/src > /tmp/mkfs.log 2>&1 || { cat /tmp/mkfs.log; fail "mkfs.erofs"; }
ls -l /tmp/img

note "serve + mount"
$SERVE --cache-dir /tmp/cache --image id=img1,ref=/tmp/img/boot.erofs,blob=/tmp/img/blob1 \
  --mount /tmp/mnt/a:img1 --ready /tmp/ready --stats out/stats.json &
daemon=$!
wait_file /tmp/ready 90
grep ' erofs ' /proc/mounts || fail "not mounted"
(cd /tmp/src && find . -type f | sort | xargs sha256sum) > /tmp/want
(cd /tmp/mnt/a && sha256sum -c --quiet /tmp/want) || fail "content differs from the source"
[ "$(readlink /tmp/mnt/a/link)" = dir/text.txt ] || fail "symlink target"
[ "$(cd /tmp/src && find . | sort | md5sum)" = "$(cd /tmp/mnt/a && find . | sort | md5sum)" ] || fail "tree listing differs"
cat /proc/fs/fscache/stats | head -20
stop_daemon $daemon
grep -q ' erofs ' /proc/mounts && fail "the server left its mount"
cat out/stats.json; echo
grep -q '"opens":2' out/stats.json || fail "expected 2 OPENs (bootstrap + blob)"
grep -q '"closes":2' out/stats.json || fail "expected 2 CLOSEs"
grep -q '"readErrors":0' out/stats.json || fail "read errors"
grep -q '"openObjects":0' out/stats.json || fail "objects left open"
grep -q '"undoFailures":0' out/stats.json || fail "unmounting failed"
n() { sed "s/.*\"$1\":\([0-9]*\).*/\1/" out/stats.json; }
# Edge-triggered waits: a wake-up per queued request or reply, never one per poll.
[ "$(n wakeups)" -le $(( 2 * ($(n opens) + $(n reads) + $(n closes)) + 5 )) ] || fail "busy loop: $(n wakeups) wake-ups"
ls /tmp/cache/fscache/cache/
note PASS
