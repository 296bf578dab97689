#!/usr/bin/env bash
# Builds erofsfuse, erofs-utils' user-space erofs over FUSE, which bench/fuse-tree.ts compares
# fuse-tree with. Bookworm's erofs-utils does not ship it, so it is built from Debian 13 (trixie)'s
# source package (the deb-src entry scripts/install-deps.sh adds) against bookworm's libfuse3-dev;
# the build dependencies come from bookworm, never a binary package from trixie. Only erofsfuse is
# built, with the compressors it needs for our images (none: uncompressed erofs) or bookworm has.
#
# Idempotent: the binary is cached as ${XDG_CACHE_HOME:-~/.cache}/ondemand/erofsfuse/erofsfuse (the
# source tree next to it) and made again only when it is missing or does not run. Prints its path on
# stdout, everything else on stderr. Nothing from erofs-utils goes into the repository.
#   bash scripts/build-erofsfuse.sh
set -euo pipefail
cache="${XDG_CACHE_HOME:-$HOME/.cache}/ondemand/erofsfuse"
bin="$cache/erofsfuse"
say() { echo "build-erofsfuse: $*" >&2; }

# (erofsfuse --version exits 1 after printing its version.)
runs() { [ -x "$bin" ] && grep -q '^erofsfuse ' <<<"$("$bin" --version 2>/dev/null || true)"; }
if runs; then echo "$bin"; exit 0; fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
deps=(dpkg-dev build-essential autoconf automake libtool pkg-config libfuse3-dev uuid-dev liblz4-dev zlib1g-dev)
missing=()
for p in "${deps[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then say "missing build dependencies (${missing[*]}) and not root"; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  # Refuse anything that would come from another release than bookworm (e.g. if trixie's pins were gone).
  plan=$(apt-get install -s --no-install-recommends "${missing[@]}" | grep '^Inst ' || true)
  if [ -n "$plan" ] && grep -vqE '\(\S+ Debian(-Security)?:12[.0-9]*/' <<<"$plan"; then
    say "refusing: installing ${missing[*]} would take packages from outside bookworm:"
    say "$plan"
    exit 1
  fi
  say "installing build dependencies from bookworm: ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! apt-cache showsrc erofs-utils 2>/dev/null | grep -q '^Version: 1\.[89]'; then
  say "no trixie source of erofs-utils in apt's lists: run scripts/install-deps.sh (as root) first"
  exit 1
fi

mkdir -p "$cache"
src=$(find "$cache" -maxdepth 1 -type d -name 'erofs-utils-*' | sort | tail -n 1)
if [ -z "$src" ]; then
  say "fetching erofs-utils/trixie's source package into $cache"
  (cd "$cache" && apt-get source -qq erofs-utils/trixie >&2)
  src=$(find "$cache" -maxdepth 1 -type d -name 'erofs-utils-*' | sort | tail -n 1)
  [ -n "$src" ] || { say "apt-get source unpacked nothing"; exit 1; }
fi

say "building erofsfuse in $src"
cd "$src"
{
  [ -x configure ] || ./autogen.sh
  # No lzma/zstd/deflate/qpl/xxhash/selinux: not needed to read our images (uncompressed erofs).
  ./configure --enable-fuse --disable-lzma --without-libzstd --without-libdeflate --without-qpl \
    --without-xxhash --without-selinux --disable-werror
  make -j"$(nproc)" -C lib
  make -j"$(nproc)" -C fuse erofsfuse
} >"$cache/build.log" 2>&1 || { say "build failed: see $cache/build.log"; tail -n 20 "$cache/build.log" >&2; exit 1; }
install -m 0755 fuse/erofsfuse "$bin.new"
mv "$bin.new" "$bin"
runs || { say "$bin does not run"; exit 1; }
say "built $(grep -m1 '^erofsfuse ' <<<"$("$bin" --version 2>/dev/null || true)")"
echo "$bin"
