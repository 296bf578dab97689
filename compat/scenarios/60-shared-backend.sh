# kernel: ondemand
# mode: fscache+fuse-blobs
# timeout: 900
# proves: fscache and fuse-blobs share one cache backend: an image read fully through fscache is then
#   mounted with --mode fuse-blobs and fetches 0 bytes from the network, and the other way round with a
#   second image (fuse-blobs cold, then fscache 0 bytes). Files equal the source both times.
. "$REPO/compat/scenarios/registry.inc"
start_registry
mkdir -p /tmp/s1 /tmp/s2 /tmp/mnt/a /tmp/mnt/b
head -c 1572864 /dev/urandom > /tmp/s1/one.bin; seq 1 60000 > /tmp/s1/seq.txt
head -c 1572864 /dev/urandom > /tmp/s2/two.bin; seq 7 70000 > /tmp/s2/seq.txt
build_push /tmp/s1 x:one
build_push /tmp/s2 x:two
check() { # src mnt
  (cd "$1" && find . -type f | sort | xargs sha256sum) > /tmp/want
  (cd "$2" && sha256sum -c --quiet /tmp/want) || fail "content of $2 differs from $1"
}
round() { # image src first-mode second-mode
  $OD mount --insecure --mode "$3" --image "$REG/$1" /tmp/mnt/a || fail "mount $3"
  check "$2" /tmp/mnt/a
  cold=$(fetched /tmp/mnt/a)
  $OD umount /tmp/mnt/a || fail "umount $3"
  $OD mount --insecure --mode "$4" --image "$REG/$1" /tmp/mnt/b || fail "mount $4"
  check "$2" /tmp/mnt/b
  warm=$(fetched /tmp/mnt/b)
  $OD umount /tmp/mnt/b || fail "umount $4"
  note "$1: $3 cold fetched $cold bytes; then $4 fetched $warm bytes"
  [ "$cold" -gt 0 ] || fail "$3 fetched nothing cold"
  [ "$warm" = 0 ] || fail "$4 fetched $warm bytes after $3 had read everything"
}
round x:one /tmp/s1 fscache fuse-blobs
round x:two /tmp/s2 fuse-blobs fscache
note PASS
