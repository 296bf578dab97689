#!/usr/bin/env bash
# Installs the Debian packages the tests, the demo and the compat VM need, only when some are missing.
set -euo pipefail
# bench/fuse-tree.ts compares fuse-tree with erofsfuse, erofs-utils' user-space erofs, which
# bookworm's erofs-utils does not ship: scripts/build-erofsfuse.sh builds it from Debian 13 (trixie)'s
# source package. Only trixie's source index is added here (deb-src): no binary package comes from it.
erofs_src=/etc/apt/sources.list.d/ondemand-erofs-utils-src.sources
erofs_src_want="# Written by ondemand's scripts/install-deps.sh: Debian 13's sources, for scripts/build-erofsfuse.sh
# (apt-get source erofs-utils/trixie). Sources only: no binary package is installed from this entry.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
if [ "$(id -u)" -eq 0 ] && [ "$(cat "$erofs_src" 2>/dev/null)" != "$erofs_src_want" ]; then
  printf '%s\n' "$erofs_src_want" > "$erofs_src"
  echo "install-deps: added trixie's deb-src ($erofs_src)"
  apt-get update -qq
fi
packages=(
  erofs-utils docker-registry skopeo umoci debootstrap attr fuse3 e2fsprogs util-linux curl
  apache2-utils zstd xz-utils cpio systemd
  fio chromium
  qemu-system-x86 busybox-static linux-source-6.1 build-essential bc bison flex libelf-dev libssl-dev
)
# The compat kernel matrix also builds kernels from other Debian releases' sources: Debian 11
# (bullseye) has linux-source-5.10, Debian 13 (trixie) linux-source-6.12. Their suites are added for
# those packages only: apt pins everything else from them to -1 (never installed, never an upgrade).
declare -A foreign=([linux-source-5.10]=bullseye [linux-source-6.12]=trixie)
sources=/etc/apt/sources.list.d/ondemand-compat-kernels.sources
prefs=/etc/apt/preferences.d/ondemand-compat-kernels

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in "${packages[@]}" "${!foreign[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages (${missing[*]}) and not root: install them first" >&2
  exit 1
fi

# The suites and pins are written whenever a package is missing (the content is fixed, so rewriting is harmless).
want_sources=""
want_prefs="# Written by ondemand's scripts/install-deps.sh: from these suites, only the kernel sources the
# compat VM kernels are built from (compat/kernel/build.sh); nothing else is ever installed or upgraded.
"
for pkg in $(printf '%s\n' "${!foreign[@]}" | sort); do
  suite="${foreign[$pkg]}"
  want_sources+="Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

"
  for s in "$suite" "$suite-security"; do
    want_prefs+="
Package: *
Pin: release n=$s
Pin-Priority: -1

Package: $pkg
Pin: release n=$s
Pin-Priority: 500
"
  done
done
printf '%s' "$want_sources" > "$sources"
printf '%s' "$want_prefs" > "$prefs"

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
