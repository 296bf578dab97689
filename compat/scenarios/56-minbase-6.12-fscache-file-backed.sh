# kernel: 6.12 ondemand
# mode: auto, fuse-blobs
# timeout: 1500
# memory: 3072
# needs: debian-minbase
# proves: on Debian 13's 6.12 both kernel paths carry a real distribution, through one cache backend:
#   the Debian bookworm minbase rootfs built with `ondemand build`, pushed to docker-registry on the VM's
#   127.0.0.1 and mounted with `--mode auto`, which picks fscache; `chroot MNT /bin/sh -c 'dpkg -l'` lists
#   the source's packages and every entry (type, mode, owner, size, symlink target, sha256) equals the
#   source. Then `--mode fuse-blobs` mounts the same image as a file-backed erofs (6.12's
#   EROFS_FS_BACKED_BY_FILE: no loop device is bound for it, its source is a file) whose complete blobs
#   are opened with FUSE passthrough (6.9+), runs dpkg, reads every file equal to the source and
#   fetches 0 bytes.
. "$REPO/compat/scenarios/registry.inc"
[ -f "${MINBASE_TAR:-}" ] || fail "no Debian minbase tarball at '${MINBASE_TAR:-}' (make test makes it with debootstrap)"
case "$(uname -r)" in 6.12.*) ;; *) fail "not a 6.12 kernel: $(uname -r)" ;; esac
# Detection's scratch files go to $ONDEMAND_TEST_TMP (/var/tmp on a host). Not the guest's tmpfs here:
# 6.12's erofs mounts a file only when its filesystem has ->read_folio, which tmpfs lacks (ENOTBLK), so
# the file-backed probe would fail there. The probe runs on ext4, like the cache (and every bootstrap).
mk_cache_dir /tmp/scratch 64
export ONDEMAND_TEST_TMP=/tmp/scratch
start_registry 1536
t0=$(date +%s)
lap() { note "$* (at $(( $(date +%s) - t0 )) s)"; }
mkdir -p /tmp/minbase /tmp/mnt/m /tmp/mnt/f
tar --xattrs --xattrs-include='*' --numeric-owner -xpf "$MINBASE_TAR" -C /tmp/minbase || fail "extract minbase"
lap "extracted $(du -sm /tmp/minbase | cut -f1) MiB"
build_push /tmp/minbase debian:min
lap "built and pushed: $(grep -c '^blob' /tmp/build.log) blob(s), $(du -sm /tmp/layout-debian | cut -f1) MiB stored"
want_n=$(chroot /tmp/minbase /bin/sh -c 'dpkg -l' | grep -c '^ii')

$OD detect > out/detect.txt 2>&1 || { cat out/detect.txt; fail "detect"; }
cat out/detect.txt
$OD mount --insecure --image "$REG/debian:min" /tmp/mnt/m || fail "mount --mode auto"
m=$(mode_of /tmp/mnt/m); [ "$m" = fscache ] || fail "auto picked $m, not fscache"
lap "mounted, mode $m"
chroot /tmp/mnt/m /bin/sh -c 'dpkg -l' > /tmp/dpkg.out || fail "dpkg -l in the chroot"
tail -3 /tmp/dpkg.out
n=$(grep -c '^ii' /tmp/dpkg.out)
[ "$n" = "$want_n" ] || fail "dpkg -l lists $n packages in the mount, $want_n in the source"
note "bytes fetched for dpkg -l ($n packages): $(fetched /tmp/mnt/m)"
same_tree /tmp/minbase /tmp/mnt/m
lap "fscache: compared"
note "bytes fetched after reading every file: $(fetched /tmp/mnt/m)"
$OD umount /tmp/mnt/m || fail "umount"

# The only loop device is the one under the ext4 cache dir (mk_cache_dir); fuse-blobs must add none.
losetup -a > /tmp/loops.before
$OD mount --insecure --mode fuse-blobs --image "$REG/debian:min" /tmp/mnt/f || fail "mount --mode fuse-blobs"
losetup -a > /tmp/loops.during
cat /tmp/loops.during
diff /tmp/loops.before /tmp/loops.during || fail "fuse-blobs bound loop devices on a kernel with file-backed erofs"
for b in /sys/block/loop*/loop/backing_file; do [ -e "$b" ] && note "bound loop: $b -> $(cat "$b")"; done
src=$(awk '$2 == "/tmp/mnt/f" && $3 == "erofs" { print $1 }' /proc/mounts)
note "erofs source of the fuse-blobs mount: $src"
[ -n "$src" ] || fail "no erofs mount at /tmp/mnt/f"
case "$src" in /dev/loop*) fail "erofs is on a loop device ($src)" ;; esac
[ -f "$src" ] || fail "erofs source $src is not a regular file"
pt=$($OD status --json | "$NODE" -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const m=JSON.parse(s).mounts.find(x=>x.mountpoint==='/tmp/mnt/f');console.log(m&&m.passthroughOpens!==undefined?m.passthroughOpens:'?')})")
note "FUSE passthrough opens: $pt"
[ "$pt" -gt 0 ] 2>/dev/null || fail "no blob was opened with FUSE passthrough (passthroughOpens=$pt)"
[ "$(chroot /tmp/mnt/f /bin/sh -c 'dpkg -l' | grep -c '^ii')" = "$want_n" ] || fail "dpkg -l through fuse-blobs"
same_tree /tmp/minbase /tmp/mnt/f
again=$(fetched /tmp/mnt/f)
lap "fuse-blobs: dpkg + every file read, $again bytes fetched"
[ "$again" = 0 ] || fail "fuse-blobs fetched $again bytes of an image fscache had read completely"
$OD status | tail -4
$OD umount /tmp/mnt/f || fail "umount fuse-blobs"
grep -q ' /tmp/mnt/' /proc/mounts && fail "mounts left"
note PASS
