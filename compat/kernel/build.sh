#!/bin/bash
# Build (once) a compat VM kernel from Debian's linux-source-<version> + the fragments in this directory.
# Usage: build.sh [--print-path] [6.1|5.10|6.12] [ondemand|no-ondemand]
#   version defaults to 6.1; the variant to the version's own (ondemand, but no-ondemand for 5.10, which
#   predates the on-demand options). So `build.sh ondemand` is still the 6.1 on-demand kernel.
#   Prints the vmlinux path as the last stdout line; build logs go to stderr.
#   --print-path: only print where the kernel is/would be cached (exit 3 when not built yet).
#   --release: print the kernel release of the installed source package (e.g. 5.10.262) and exit.
# Fragments: compat.config (every version) + <version>.config + ondemand.config (on-demand variants of
# kernels that have the options) + no-ondemand.config (the no-ondemand variant of such kernels).
# Cache: ${XDG_CACHE_HOME:-~/.cache}/ondemand/compat-kernel/<key>/vmlinux, key = sha256 of the fragments,
# this script, the linux-source-<version> package version, gcc's version and the variant. Next to
# vmlinux: config, release (the kernel release string), build-seconds. Overrides: COMPAT_KERNEL (6.1
# ondemand), COMPAT_KERNEL_NO_ONDEMAND (6.1 no-ondemand), COMPAT_KERNEL_5_10, COMPAT_KERNEL_6_12 (and
# COMPAT_KERNEL_<v>_NO_ONDEMAND). Builds are serialized with flock and published atomically.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
print_only=0
release_only=0
case "${1:-}" in
  --print-path) print_only=1; shift ;;
  --release) release_only=1; shift ;;
esac
version=6.1
case "${1:-}" in
  5.10|6.1|6.12) version="$1"; shift ;;
  [0-9]*) echo "build.sh: unknown kernel version '$1' (5.10|6.1|6.12)" >&2; exit 2 ;;
esac
has_ondemand=1
[ "$version" = 5.10 ] && has_ondemand=0   # CACHEFILES_ONDEMAND / EROFS_FS_ONDEMAND came in 5.19
default_variant=ondemand
[ "$has_ondemand" = 1 ] || default_variant=no-ondemand
variant="${1:-$default_variant}"
case "$variant" in
  ondemand|no-ondemand) ;;
  *) echo "build.sh: unknown variant '$variant' (ondemand|no-ondemand)" >&2; exit 2 ;;
esac
if [ "$variant" = ondemand ] && [ "$has_ondemand" = 0 ]; then
  echo "build.sh: linux $version has no on-demand options (CACHEFILES_ONDEMAND/EROFS_FS_ONDEMAND are 5.19+); its only variant is no-ondemand" >&2
  exit 2
fi
fragments=("$here/compat.config" "$here/$version.config")
if [ "$has_ondemand" = 1 ]; then
  fragments+=("$here/ondemand.config")
  [ "$variant" = no-ondemand ] && fragments+=("$here/no-ondemand.config")
fi
if [ "$version" = 6.1 ]; then
  if [ "$variant" = ondemand ]; then override="${COMPAT_KERNEL:-}"; else override="${COMPAT_KERNEL_NO_ONDEMAND:-}"; fi
else
  name="COMPAT_KERNEL_${version//./_}"
  [ "$variant" != "$default_variant" ] && name="${name}_NO_ONDEMAND"
  override="${!name:-}"
fi

pkg="linux-source-$version"
tarball="/usr/src/$pkg.tar.xz"
if [ "$release_only" = 1 ]; then
  # The package's upstream version is the kernel's (5.10.262-1 -> 5.10.262, 6.12.118-1~deb12u1 -> 6.12.118).
  v="$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null)" || { echo "build.sh: $pkg is not installed" >&2; exit 1; }
  echo "${v%%-*}"
  exit 0
fi
if [ -n "$override" ]; then
  [ -f "$override" ] || { echo "build.sh: override kernel $override does not exist" >&2; exit 1; }
  echo "$override"; exit 0
fi

pkgver="$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || echo missing)"
gccver="$(gcc --version 2>/dev/null | head -1 || echo missing)"
key="$( { cat "${fragments[@]}" "$here/build.sh"; echo "$pkg=$pkgver"; echo "$gccver"; echo "variant=$variant"; } | sha256sum | cut -c1-32)"
root="${XDG_CACHE_HOME:-$HOME/.cache}/ondemand/compat-kernel"
dest="$root/$key"
if [ -f "$dest/vmlinux" ]; then echo "$dest/vmlinux"; exit 0; fi
if [ "$print_only" = 1 ]; then echo "$dest/vmlinux"; exit 3; fi
[ -f "$tarball" ] || { echo "build.sh: $tarball missing (scripts/install-deps.sh installs $pkg)" >&2; exit 1; }
for t in gcc make bc bison flex; do command -v "$t" >/dev/null || { echo "build.sh: '$t' missing (scripts/install-deps.sh)" >&2; exit 1; }; done

mkdir -p "$root"
exec 9>"$root/.lock-$version-$variant"
flock 9
if [ -f "$dest/vmlinux" ]; then echo "$dest/vmlinux"; exit 0; fi   # built while we waited

# One source tree per kernel version (about 1.6 GB each) is kept and reused by its variants: configs
# are always regenerated from tinyconfig, and kbuild's per-symbol dependency tracking recompiles only
# what a config change touches, so a second variant takes minutes instead of a full build. A tree is
# tied to its package version and gcc.
tree="$root/tree-$version"
exec 8>"$root/.lock-tree-$version"
flock 8
# Before kernels of several versions, the 6.1 tree was `tree`: keep it (a full rebuild is an hour here).
if [ "$version" = 6.1 ] && [ ! -e "$tree" ] && [ -d "$root/tree/linux-source-6.1" ]; then mv "$root/tree" "$tree"; fi
stamp="$pkg=$pkgver $gccver"
if [ "$(cat "$tree/.source-version" 2>/dev/null)" != "$stamp" ]; then
  # Older stamps were "<pkgver> <gcc>" (6.1 only).
  if [ "$version" != 6.1 ] || [ "$(cat "$tree/.source-version" 2>/dev/null)" != "$pkgver $gccver" ]; then
    rm -rf "$tree"
    mkdir -p "$tree.new.$$"
    tar -C "$tree.new.$$" -xf "$tarball"
    mv "$tree.new.$$" "$tree"
  fi
  echo "$stamp" > "$tree/.source-version"
fi
start=$(date +%s)
echo "build.sh: building linux $version $variant kernel (key $key) in $tree" >&2
src="$tree/$pkg"
export KBUILD_BUILD_TIMESTAMP=@0 KBUILD_BUILD_USER=compat KBUILD_BUILD_HOST=compat KBUILD_BUILD_VERSION=1
cd "$src"
make -s tinyconfig >&2
scripts/kconfig/merge_config.sh -m .config kernel/configs/kvm_guest.config "${fragments[@]}" >&2
make -s olddefconfig >&2

# Every fragment line must survive (the last fragment wins). olddefconfig drops options silently
# when a dependency is missing, e.g. EROFS_FS_ONDEMAND without FSCACHE=y, or when a symbol does not
# exist in this version (hence the per-version fragments).
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
make -s kernelrelease > "$dest.tmp.$$/release"
echo "$(( $(date +%s) - start ))" > "$dest.tmp.$$/build-seconds"
rm -rf "$dest"
mv "$dest.tmp.$$" "$dest"
echo "build.sh: built linux $version $variant kernel in $(( $(date +%s) - start )) s" >&2
echo "$dest/vmlinux"
