#!/usr/bin/env bash
# Runs every benchmark; each prints its ratios. Results are copied by hand into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
node dist/bench/fuse-read.js
node dist/bench/cache-throughput.js
node dist/bench/erofs-write.js
node dist/bench/registry-read.js
node dist/bench/build-debian.js
node dist/bench/convert-debian.js
