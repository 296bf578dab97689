#!/usr/bin/env bash
# Runs every benchmark; each prints its ratios. Results are copied by hand into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
node dist/bench/fuse-read.js
# fanotify vs fuse-blobs vs local erofs (skips itself on a kernel without pre-content events, < 6.14)
node dist/bench/fanotify-read.js
# fuse-tree vs fuse-blobs vs local erofs vs erofsfuse (built by scripts/build-erofsfuse.sh; its rows skipped when it cannot be) (issue #15)
node dist/bench/fuse-tree.js
node dist/bench/cache-throughput.js
node dist/bench/erofs-write.js
node dist/bench/registry-read.js
# mount --prefetch until complete vs skopeo copy of the same image (issue #18)
node dist/bench/prefetch-pull.js
# cold reads through a fresh mount vs curl of the same blob, 1, 8 and 32 readers (issue #18)
node dist/bench/registry-cold.js
# frame compression: gzip (the default), zstd (fzstd and native `zstd -d`) and none, decode + verify and wire (issue #18)
node dist/bench/codec.js
# issue #16: one `ondemand bench` on the Debian minbase image (every mode vs local, cold/warm/hot), fio
# on the same mounts beside it; then HelloBench-style start-up (python, node, nginx) vs a full pull
node dist/bench/fio-check.js
node dist/bench/startup.js
node dist/bench/build-debian.js
node dist/bench/convert-debian.js
# fscache vs local erofs, inside the compat VM (needs qemu + the compat kernel; builds it when not cached)
if command -v qemu-system-x86_64 >/dev/null; then
  node dist/bench/fscache-read.js
  # issue #16: the same `ondemand bench` in the VM (fscache vs fuse-blobs vs local)
  node dist/bench/bench-vm.js
fi
