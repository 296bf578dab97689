# kernel: ondemand
# mode: auto
# timeout: 1500
# memory: 3072
# needs: debian-minbase
# proves: a real distribution through the kernel path: the Debian bookworm minbase rootfs (debootstrap)
#   built with `ondemand build`, pushed to docker-registry on the VM's 127.0.0.1 and mounted with
#   `--mode auto`, which picks fscache; `chroot MNT /bin/sh -c 'dpkg -l'` works and lists the source's
#   packages; every entry (type, mode, owner, size, symlink target, sha256) equals the source; the bytes
#   fetched are printed. Then `--mode fuse-blobs` on the same image runs dpkg and reads every file
#   fetching 0 bytes (one cache backend).
. "$REPO/compat/scenarios/registry.inc"
[ -f "${MINBASE_TAR:-}" ] || fail "no Debian minbase tarball at '${MINBASE_TAR:-}' (make test makes it with debootstrap)"
start_registry 1536
t0=$(date +%s)
lap() { note "$* (at $(( $(date +%s) - t0 )) s)"; }
mkdir -p /tmp/minbase /tmp/mnt/m /tmp/mnt/f
tar --xattrs --xattrs-include='*' --numeric-owner -xpf "$MINBASE_TAR" -C /tmp/minbase || fail "extract minbase"
lap "extracted $(du -sm /tmp/minbase | cut -f1) MiB"
build_push /tmp/minbase debian:min
lap "built and pushed: $(grep -c '^blob' /tmp/build.log) blob(s), $(du -sm /tmp/layout-debian | cut -f1) MiB stored"
want_n=$(chroot /tmp/minbase /bin/sh -c 'dpkg -l' | grep -c '^ii')

$OD mount --insecure --image "$REG/debian:min" /tmp/mnt/m || fail "mount --mode auto"
m=$(mode_of /tmp/mnt/m); [ "$m" = fscache ] || fail "auto picked $m, not fscache"
lap "mounted, mode $m"
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
$OD umount /tmp/mnt/m || fail "umount"

$OD mount --insecure --mode fuse-blobs --image "$REG/debian:min" /tmp/mnt/f || fail "mount --mode fuse-blobs"
[ "$(chroot /tmp/mnt/f /bin/sh -c 'dpkg -l' | grep -c '^ii')" = "$want_n" ] || fail "dpkg -l through fuse-blobs"
same_tree /tmp/minbase /tmp/mnt/f
again=$(fetched /tmp/mnt/f)
lap "fuse-blobs: dpkg + every file read, $again bytes fetched"
[ "$again" = 0 ] || fail "fuse-blobs fetched $again bytes of an image fscache had read completely"
$OD umount /tmp/mnt/f || fail "umount fuse-blobs"
grep -q ' /tmp/mnt/' /proc/mounts && fail "mounts left"
note PASS
