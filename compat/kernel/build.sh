#!/bin/bash
# Build (once) the compat VM kernel from Debian's linux-source-6.1 + the fragments in this directory.
# Usage: build.sh [--print-path] ondemand|no-ondemand
#   prints the vmlinux path as the last stdout line; build logs go to stderr.
#   --print-path: only print where the kernel is/would be cached (exit 3 when not built yet).
# Cache: ${XDG_CACHE_HOME:-~/.cache}/ondemand/compat-kernel/<key>/vmlinux, key = sha256 of the fragments,
# this script, the linux-source-6.1 package version and gcc's version. COMPAT_KERNEL (ondemand) and
# COMPAT_KERNEL_NO_ONDEMAND override the path. Builds are serialized with flock and published atomically.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
print_only=0
if [ "${1:-}" = "--print-path" ]; then print_only=1; shift; fi
variant="${1:-ondemand}"
case "$variant" in
  ondemand) fragments=("$here/compat.config"); override="${COMPAT_KERNEL:-}" ;;
  no-ondemand) fragments=("$here/compat.config" "$here/no-ondemand.config"); override="${COMPAT_KERNEL_NO_ONDEMAND:-}" ;;
  *) echo "build.sh: unknown variant '$variant' (ondemand|no-ondemand)" >&2; exit 2 ;;
esac
if [ -n "$override" ]; then
  [ -f "$override" ] || { echo "build.sh: override kernel $override does not exist" >&2; exit 1; }
  echo "$override"; exit 0
fi

tarball=/usr/src/linux-source-6.1.tar.xz
pkgver="$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || echo missing)"
gccver="$(gcc --version 2>/dev/null | head -1 || echo missing)"
key="$( { cat "${fragments[@]}" "$here/build.sh"; echo "linux-source-6.1=$pkgver"; echo "$gccver"; echo "variant=$variant"; } | sha256sum | cut -c1-32)"
root="${XDG_CACHE_HOME:-$HOME/.cache}/ondemand/compat-kernel"
dest="$root/$key"
if [ -f "$dest/vmlinux" ]; then echo "$dest/vmlinux"; exit 0; fi
if [ "$print_only" = 1 ]; then echo "$dest/vmlinux"; exit 3; fi
[ -f "$tarball" ] || { echo "build.sh: $tarball missing (apt-get install linux-source-6.1)" >&2; exit 1; }
for t in gcc make bc bison flex; do command -v "$t" >/dev/null || { echo "build.sh: '$t' missing (scripts/install-deps.sh)" >&2; exit 1; }; done

mkdir -p "$root"
exec 9>"$root/.lock-$variant"
flock 9
if [ -f "$dest/vmlinux" ]; then echo "$dest/vmlinux"; exit 0; fi   # built while we waited

# One source tree is kept (and reused) for every variant: configs are always regenerated from tinyconfig,
# and kbuild's per-symbol dependency tracking recompiles only what a config change touches, so the
# second variant takes about a minute instead of a full build. The tree is tied to the package version.
tree="$root/tree"
exec 8>"$root/.lock-tree"
flock 8
if [ "$(cat "$tree/.source-version" 2>/dev/null)" != "$pkgver $gccver" ]; then
  rm -rf "$tree"
  mkdir -p "$tree.new.$$"
  tar -C "$tree.new.$$" -xf "$tarball"
  echo "$pkgver $gccver" > "$tree.new.$$/.source-version"
  mv "$tree.new.$$" "$tree"
fi
start=$(date +%s)
echo "build.sh: building $variant kernel (key $key) in $tree" >&2
src="$tree/linux-source-6.1"
export KBUILD_BUILD_TIMESTAMP=@0 KBUILD_BUILD_USER=compat KBUILD_BUILD_HOST=compat KBUILD_BUILD_VERSION=1
cd "$src"
make -s tinyconfig >&2
scripts/kconfig/merge_config.sh -m .config kernel/configs/kvm_guest.config "${fragments[@]}" >&2
make -s olddefconfig >&2

# Every fragment line must survive (the last fragment wins). olddefconfig drops options silently
# when a dependency is missing, e.g. EROFS_FS_ONDEMAND without FSCACHE=y.
declare -A want=()
for f in "${fragments[@]}"; do
  while IFS= read -r line; do
    line="${line%%#*}"; line="${line%"${line##*[![:space:]]}"}"
    [[ "$line" =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]] || continue
    want["${BASH_REMATCH[1]}"]="${BASH_REMATCH[2]}"
  done < "$f"
done
bad=0
for sym in "${!want[@]}"; do
  val="${want[$sym]}"
  if [ "$val" = n ]; then
    if grep -q "^$sym=" .config; then echo "build.sh: $sym should be unset but is $(grep "^$sym=" .config)" >&2; bad=1; fi
  elif ! grep -qx "$sym=$val" .config; then
    echo "build.sh: $sym=$val did not survive olddefconfig (have: $(grep -E "^(# )?$sym[= ]" .config || echo absent))" >&2; bad=1
  fi
done
[ "$bad" = 0 ] || exit 1

ok=0
for attempt in 1 2 3; do
  # Polite by default on shared machines; COMPAT_NICE / COMPAT_JOBS override.
  if nice -n "${COMPAT_NICE:-10}" make -s -j"${COMPAT_JOBS:-$(nproc)}" vmlinux >&2; then ok=1; break; fi
  echo "build.sh: make failed (attempt $attempt), retrying" >&2
done
[ "$ok" = 1 ] || { echo "build.sh: kernel build failed 3 times" >&2; exit 1; }

mkdir -p "$dest.tmp.$$"
cp vmlinux "$dest.tmp.$$/vmlinux"
cp .config "$dest.tmp.$$/config"
echo "$(( $(date +%s) - start ))" > "$dest.tmp.$$/build-seconds"
rm -rf "$dest"
mv "$dest.tmp.$$" "$dest"
echo "build.sh: built $variant kernel in $(( $(date +%s) - start )) s" >&2
echo "$dest/vmlinux"
