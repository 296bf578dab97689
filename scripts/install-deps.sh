#!/usr/bin/env bash
# Installs the Debian packages the tests, the demo and the compat VM need, only when some are missing.
set -euo pipefail
packages=(
  erofs-utils docker-registry skopeo umoci debootstrap attr fuse3 e2fsprogs util-linux curl
  apache2-utils zstd xz-utils cpio
  fio chromium
  qemu-system-x86 busybox-static linux-source-6.1 build-essential bc bison flex libelf-dev libssl-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages (${missing[*]}) and not root: install them first" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
