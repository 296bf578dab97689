# kernel: ondemand
# mode: fscache
# timeout: 1200
# proves: 200 blobs over 20 mounts in one daemon: 20 images of 10 blobs each (our builder, from OCI
#   layouts) mounted with `ondemand mount --mode fscache`; every file equals its source; every umount is
#   clean; afterwards the worker holds no more fds than after a first mount and umount (no anon fd and
#   no cache file of an unmounted blob left open), and no erofs mount is left.
. "$REPO/compat/scenarios/registry.inc"
mk_cache_dir /tmp/cache 512
mkdir -p /tmp/run /tmp/many
"$NODE" "$DIST/compat/guest/many-images.js" /tmp/many 20 10 || fail "making the images"
worker_pid() { $OD status --json | "$NODE" -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).daemon.workerPid))"; }
check() { # i mnt
  (cd /tmp/many/src$1 && find . -type f | sort | xargs sha256sum) > /tmp/want
  (cd "$2" && sha256sum -c --quiet /tmp/want) || fail "mount of image $1 differs from its source"
}
# Baseline: the device is open after a first fscache mount; measure after its umount.
mkdir -p /tmp/mnt/0
$OD mount --mode fscache --image oci:/tmp/many/layout1:latest /tmp/mnt/0 || fail "first mount"
check 1 /tmp/mnt/0
$OD umount /tmp/mnt/0 || fail "first umount"
W=$(worker_pid)
# Blobs nobody uses are closed after the cache's idle time (10 s): wait for that, then count.
blob_fds() { ls -l /proc/$W/fd 2>/dev/null | grep -c ' /tmp/cache/blobs/'; }
i=0; while [ "$(blob_fds)" -gt 0 ]; do i=$((i+1)); [ "$i" -gt 300 ] && fail "blob files of an unmounted image stay open"; sleep 0.2; done
base=$(ls /proc/$W/fd | wc -l)
note "worker $W: $base fds after a first mount and umount (blob files closed after $((i / 5)) s)"
for i in $(seq 1 20); do
  mkdir -p /tmp/mnt/$i
  $OD mount --mode fscache --image "oci:/tmp/many/layout$i:latest" /tmp/mnt/$i || fail "mount $i"
done
[ "$(grep -c ' erofs ' /proc/mounts)" = 20 ] || fail "expected 20 erofs mounts"
for i in $(seq 1 20); do check "$i" /tmp/mnt/$i; done
blobs=$(for i in $(seq 1 20); do ls /tmp/many/layout$i/blobs/sha256; done | sort -u | wc -l)
note "20 mounts read back right; $(ls /proc/$W/fd | wc -l) worker fds while mounted; $blobs distinct blobs in the layouts (data + bootstrap + config + manifest)"
$OD status | tail -3
[ "$(worker_pid)" = "$W" ] || fail "the worker restarted during the run"
for i in $(seq 1 20); do $OD umount /tmp/mnt/$i || fail "umount $i"; done
grep -q ' erofs ' /proc/mounts && fail "erofs mounts left"
i=0
while [ "$(ls /proc/$W/fd | wc -l)" -gt "$base" ]; do
  i=$((i+1)); [ "$i" -gt 300 ] && { ls -l /proc/$W/fd | tail -20; fail "fd leak: $(ls /proc/$W/fd | wc -l) fds after unmounting, $base before"; }; sleep 0.2
done
note "worker fds after unmounting all: $(ls /proc/$W/fd | wc -l) (baseline $base)"
note PASS
