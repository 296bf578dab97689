# kernel: ondemand
# mode: fscache
# timeout: 900
# proves: the real CLI end to end in the on-demand kernel: `ondemand build` + `push` a small tree to
#   Debian's docker-registry on the VM's 127.0.0.1, `ondemand mount --mode auto` picks fscache (status
#   --json), every file equals the source (sha256), bytes fetched are printed, `ondemand umount` is clean.
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

note PASS
