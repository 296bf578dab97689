# kernel: ondemand
# mode: fscache
# timeout: 900
# proves: the real CLI end to end in the on-demand kernel: `ondemand build` + `push` a small tree to
#   Debian's docker-registry on the VM's 127.0.0.1, `ondemand mount --mode auto` picks fscache (status
#   --json), every file equals the source (sha256), bytes fetched are printed, `ondemand umount` is clean.
#   With the minbase tarball cached (ONDEMAND_COMPAT_MINBASE=1) also `chroot MNT dpkg -l`.
. "$REPO/compat/scenarios/registry.inc"
start_registry

note "build + push a small tree"
mkdir -p /tmp/src/bin /tmp/src/doc /tmp/mnt/a
cp -a /usr/share/doc/bash /usr/share/doc/coreutils /tmp/src/doc/ 2>/dev/null || true
cp /bin/busybox /tmp/src/bin/ 2>/dev/null || cp /bin/ls /tmp/src/bin/
head -c 2097152 /dev/urandom > /tmp/src/random.bin
seq 1 100000 > /tmp/src/seq.txt
ln -s seq.txt /tmp/src/link
build_push /tmp/src x:small

note "mount --mode auto"
$OD mount --insecure --image "$REG/x:small" /tmp/mnt/a || fail "mount"
m=$(mode_of /tmp/mnt/a); note "mode picked by auto: $m"
[ "$m" = fscache ] || { $OD status; fail "auto did not pick fscache"; }
(cd /tmp/src && find . -type f | sort | xargs sha256sum) > /tmp/want
(cd /tmp/mnt/a && sha256sum -c --quiet /tmp/want) || fail "content differs from the source"
[ "$(readlink /tmp/mnt/a/link)" = seq.txt ] || fail "symlink target"
$OD status || fail "status"
note "bytes fetched (fscache, cold): $(fetched /tmp/mnt/a)"
$OD umount /tmp/mnt/a || fail "umount"
grep -q ' /tmp/mnt/a ' /proc/mounts && fail "still mounted after umount"

if [ "${ONDEMAND_COMPAT_MINBASE:-0}" = 1 ] && [ -f /var/tmp/ondemand-cache/debian-bookworm-minbase.tar ]; then
  note "minbase: chroot dpkg -l"
  mkdir -p /tmp/minbase /tmp/mnt/m
  tar -xf /var/tmp/ondemand-cache/debian-bookworm-minbase.tar -C /tmp/minbase || fail "extract minbase"
  build_push /tmp/minbase x:minbase
  $OD mount --insecure --image "$REG/x:minbase" /tmp/mnt/m || fail "mount minbase"
  chroot /tmp/mnt/m /bin/sh -c 'dpkg -l' | tail -3 || fail "dpkg -l in the chroot"
  note "bytes fetched (minbase): $(fetched /tmp/mnt/m)"
  $OD umount /tmp/mnt/m || fail "umount minbase"
else
  note "minbase part skipped (set ONDEMAND_COMPAT_MINBASE=1 with /var/tmp/ondemand-cache/debian-bookworm-minbase.tar present)"
fi
note PASS
