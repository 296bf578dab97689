# kernel: ondemand
# mode: fscache
# timeout: 300
# proves: the server (the product's fscache transport, in-process kernel broker) SIGKILLed during a cold
#   full read (sha256 of every file): a holder process kept the /dev/cachefiles fd (taken with
#   pidfd_getfd), a new server adopts it (InProcessKernel adoptCachefiles), re-attaches the mount with the
#   transport's reattach and writes `restore`; the interrupted reads are re-delivered (re-OPEN + READ),
#   every checksum is right, and unwinding the re-attached mount unmounts it. Where the kernel
#   cannot restore, the reads must fail with EIO, never return wrong data.
mk_cache_dir /tmp/cache
mkdir -p /tmp/src/d /tmp/img /tmp/mnt/a
for i in 1 2 3 4 5 6; do head -c 1048576 /dev/urandom > /tmp/src/d/file$i; done
seq 1 300000 > /tmp/src/text.txt
mkfs.erofs --chunksize=1048576 --blobdev=/tmp/img/blob1 /tmp/img/boot.erofs /tmp/src > /tmp/mkfs.log 2>&1 || { cat /tmp/mkfs.log; fail "mkfs.erofs"; }
IMG="id=img1,ref=/tmp/img/boot.erofs,blob=/tmp/img/blob1"

# Every range fetch 1.5 s late: the cold read is still going when the server is killed.
$SERVE --cache-dir /tmp/cache --image "$IMG" --mount /tmp/mnt/a:img1 --fetch-delay-ms 1500 --ready /tmp/readyA &
A=$!
wait_file /tmp/readyA 90
cat /tmp/readyA; echo
A_FD=$(sed 's/.*"deviceFd":\([0-9]*\).*/\1/' /tmp/readyA)
restore=$(sed 's/.*"restoreSupported":\([a-z]*\).*/\1/' /tmp/readyA)
$SERVE --hold "$A:$A_FD" --ready /tmp/readyH &
H=$!
wait_file /tmp/readyH 60
H_FD=$(sed 's/.*"deviceFd":\([0-9]*\).*/\1/' /tmp/readyH)

(cd /tmp/src && find . -type f | sort | xargs sha256sum) > /tmp/want
( cd /tmp/mnt/a && sha256sum -c /tmp/want > /tmp/check.out 2>&1; echo $? > /tmp/check.rc ) &
R=$!
sleep 2
[ -s /tmp/check.rc ] && fail "the read finished before the kill: nothing was in flight"
kill -KILL $A
note "daemon $A killed; restore supported: $restore"
wait $A 2>/dev/null
if [ "$restore" = true ]; then
  $SERVE --cache-dir /tmp/cache --adopt-from "$H:$H_FD" --image "$IMG" --reattach /tmp/mnt/a:img1 --ready /tmp/readyB --stats out/statsB.json &
  B=$!
  wait_file /tmp/readyB 60
  wait $R
  cat /tmp/check.out
  [ "$(cat /tmp/check.rc)" = 0 ] || fail "checksums wrong or reads failed after restore"
  stop_daemon $B
  grep -q ' erofs ' /proc/mounts && fail "the restored server left the mount"
  cat out/statsB.json; echo
  grep -q '"undoFailures":0' out/statsB.json || fail "unmounting after restore failed"
  grep -q '"readErrors":0' out/statsB.json || fail "read errors in the restored daemon"
  grep -q '"reads":0,' out/statsB.json && fail "the restored daemon served no READs (nothing was resumed)"
else
  # No failover: drop the holder, so pending reads end with EIO; nothing may read wrong.
  kill -KILL $H
  wait $R
  cat /tmp/check.out
  # sha256sum -c prints "name: FAILED" for wrong bytes, "name: FAILED open or read" for EIO.
  grep -q ': FAILED$' /tmp/check.out && fail "a file read wrong data"
  umount /tmp/mnt/a || umount -l /tmp/mnt/a
fi
kill -KILL $H 2>/dev/null
note PASS
