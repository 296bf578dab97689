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
node dist/bench/build-debian.js
node dist/bench/convert-debian.js
# fscache vs local erofs, inside the compat VM (needs qemu + the compat kernel; builds it when not cached)
if command -v qemu-system-x86_64 >/dev/null; then node dist/bench/fscache-read.js; fi
