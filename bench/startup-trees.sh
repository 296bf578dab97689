#!/usr/bin/env bash
# HelloBench-style root filesystems for bench/startup.ts, built here from Debian packages only: the
# Debian bookworm minbase tarball the tests make (debootstrap, test/helpers/trees.ts), then
# `apt-get install` in a chroot of it from the host's Debian mirror. Nothing else comes from the network.
#   bench/startup-trees.sh NAME OUT.tar      NAME: python | node | nginx
# The tarball is written atomically; an existing one is kept (delete it to rebuild).
set -euo pipefail
name=$1 out=$2
minbase=${ONDEMAND_DEBIAN_TAR:-/var/tmp/ondemand-cache/debian-bookworm-minbase.tar}
case $name in
  python) packages=(python3) ;;
  node) packages=(nodejs) ;;
  nginx) packages=(nginx-light) ;;
  *) echo "startup-trees: unknown image $name (python, node, nginx)" >&2; exit 2 ;;
esac
[ -e "$out" ] && exit 0
[ -e "$minbase" ] || { echo "startup-trees: no minbase tarball at $minbase (run the Debian tests, or debootstrap --variant=minbase bookworm)" >&2; exit 1; }
root=$(mktemp -d /var/tmp/ondemand-startup-tree-XXXXXX)
cleanup() {
  for m in "$root/dev" "$root/proc"; do mountpoint -q "$m" && umount -l "$m"; done
  rm -rf "$root"
}
trap cleanup EXIT
tar --xattrs --xattrs-include='*' --numeric-owner -xpf "$minbase" -C "$root"
# DNS for apt (the sources debootstrap wrote); no daemons started by packages.
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"
mount --bind /dev "$root/dev"
mount -t proc proc "$root/proc"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
chroot "$root" apt-get clean
umount "$root/proc"; umount "$root/dev"
rm -rf "$root"/var/lib/apt/lists/* "$root/usr/sbin/policy-rc.d"
: > "$root/etc/resolv.conf"
tar --xattrs --xattrs-include='*' --numeric-owner --format=posix -cpf "$out.tmp.$$" -C "$root" .
mv "$out.tmp.$$" "$out"
echo "startup-trees: $name -> $out ($(du -sh "$out" | cut -f1))"
