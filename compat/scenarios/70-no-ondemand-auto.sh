# kernel: no-ondemand
# mode: auto
# timeout: 900
# proves: in a kernel without the on-demand options the real CLI's `--mode auto` mounts through
#   fuse-blobs (status --json), `ondemand detect` names why fscache was passed over, the files are right,
#   and `--mode fscache` fails with one clear line and exit 1.
. "$REPO/compat/scenarios/registry.inc"
start_registry
$OD detect > out/detect.txt 2>&1 || { cat out/detect.txt; fail "detect"; }
cat out/detect.txt
grep -qi 'fuse-blobs' out/detect.txt || fail "detect does not pick fuse-blobs"
grep -q 'ONDEMAND' out/detect.txt || fail "detect does not say which option is missing"

mkdir -p /tmp/src/d /tmp/mnt/a /tmp/mnt/b
head -c 1048576 /dev/urandom > /tmp/src/d/random.bin
seq 1 50000 > /tmp/src/seq.txt
build_push /tmp/src x:small

if $OD mount --insecure --mode fscache --image "$REG/x:small" /tmp/mnt/b 2> /tmp/forced.err; then fail "--mode fscache mounted without on-demand support"; fi
cat /tmp/forced.err
[ "$(wc -l < /tmp/forced.err)" -le 2 ] || fail "--mode fscache failure is not one clear line"
grep -q 'fscache' /tmp/forced.err || fail "--mode fscache failure does not say why"

$OD mount --insecure --image "$REG/x:small" /tmp/mnt/a || fail "mount"
m=$(mode_of /tmp/mnt/a); note "mode picked by auto: $m"
[ "$m" = fuse-blobs ] || fail "auto picked $m, not fuse-blobs"
(cd /tmp/src && find . -type f | sort | xargs sha256sum) > /tmp/want
(cd /tmp/mnt/a && sha256sum -c --quiet /tmp/want) || fail "content differs from the source"
note "bytes fetched (fuse-blobs): $(fetched /tmp/mnt/a)"
$OD umount /tmp/mnt/a || fail "umount"
note PASS
