# kernel: 5.10
# mode: auto
# timeout: 1500
# memory: 3072
# needs: debian-minbase
# proves: on Debian 11's 5.10, whose erofs has neither chunk-based files (5.15) nor extra devices (5.16),
#   `ondemand detect` picks fuse-tree and says why the erofs modes are out; `--mode fuse-blobs` fails in
#   one line; the Debian bookworm minbase rootfs built with `ondemand build`, pushed to docker-registry on
#   the VM's 127.0.0.1 and mounted with `--mode auto` is served by fuse-tree (status --json), no erofs and
#   no loop device involved; `chroot MNT /bin/sh -c 'dpkg -l'` lists the source's packages, and every
#   entry (type, mode, owner, size, symlink target, sha256) equals the source.
. "$REPO/compat/scenarios/registry.inc"
[ -f "${MINBASE_TAR:-}" ] || fail "no Debian minbase tarball at '${MINBASE_TAR:-}' (make test makes it with debootstrap)"
case "$(uname -r)" in 5.10.*) ;; *) fail "not a 5.10 kernel: $(uname -r)" ;; esac
start_registry 1536
t0=$(date +%s)
lap() { note "$* (at $(( $(date +%s) - t0 )) s)"; }

$OD detect > out/detect.txt 2>&1 || { cat out/detect.txt; fail "detect"; }
cat out/detect.txt
lap "detect"
grep -q '^mode: fuse-tree ' out/detect.txt || fail "detect does not pick fuse-tree"
for m in fscache fuse-blobs; do
  grep -q "^skipped $m: .*chunk-based" out/detect.txt || fail "detect does not say that $m is out because erofs cannot mount chunk-based / multi-device images"
done

mkdir -p /tmp/minbase /tmp/mnt/m /tmp/mnt/x
tar --xattrs --xattrs-include='*' --numeric-owner -xpf "$MINBASE_TAR" -C /tmp/minbase || fail "extract minbase"
lap "extracted $(du -sm /tmp/minbase | cut -f1) MiB"
build_push /tmp/minbase debian:min
lap "built and pushed: $(grep -c '^blob' /tmp/build.log) blob(s), $(du -sm /tmp/layout-debian | cut -f1) MiB stored"
want_n=$(chroot /tmp/minbase /bin/sh -c 'dpkg -l' | grep -c '^ii')

if $OD mount --insecure --mode fuse-blobs --image "$REG/debian:min" /tmp/mnt/x 2> /tmp/forced.err; then fail "--mode fuse-blobs mounted on 5.10"; fi
cat /tmp/forced.err
[ "$(wc -l < /tmp/forced.err)" -le 2 ] || fail "--mode fuse-blobs failure is not one clear line"

losetup -a > /tmp/loops.before
$OD mount --insecure --image "$REG/debian:min" /tmp/mnt/m || fail "mount --mode auto"
m=$(mode_of /tmp/mnt/m); [ "$m" = fuse-tree ] || fail "auto picked $m, not fuse-tree"
lap "mounted, mode $m"
grep ' /tmp/mnt/m ' /proc/mounts
grep -q ' erofs ' /proc/mounts && fail "an erofs mount exists: fuse-tree must not need the kernel's erofs"
losetup -a > /tmp/loops.during
diff /tmp/loops.before /tmp/loops.during || fail "fuse-tree bound loop devices"
chroot /tmp/mnt/m /bin/true || fail "chroot /bin/true"
note "bytes fetched for chroot /bin/true: $(fetched /tmp/mnt/m)"
chroot /tmp/mnt/m /bin/sh -c 'dpkg -l' > /tmp/dpkg.out || fail "dpkg -l in the chroot"
tail -3 /tmp/dpkg.out
n=$(grep -c '^ii' /tmp/dpkg.out)
[ "$n" = "$want_n" ] || fail "dpkg -l lists $n packages in the mount, $want_n in the source"
note "bytes fetched for /bin/true + dpkg -l ($n packages): $(fetched /tmp/mnt/m)"
same_tree /tmp/minbase /tmp/mnt/m
lap "compared"
note "bytes fetched after reading every file: $(fetched /tmp/mnt/m)"
$OD status | tail -4
$OD umount /tmp/mnt/m || fail "umount"
grep -q ' /tmp/mnt/' /proc/mounts && fail "mounts left"
note PASS
