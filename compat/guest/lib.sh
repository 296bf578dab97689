# Helpers sourced by every scenario (run.sh) inside the compat VM. $REPO, $NODE, $DIST are set by vm.ts.
set -u
# The guest's root is the host's, read-only: scratch files (kernel feature probes) go to its tmpfs.
export ONDEMAND_TEST_TMP=/tmp
fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "== $*"; }
# A loop-mounted ext4 for the cachefiles cache dir (cachefiles cannot bind on tmpfs in 6.1).
mk_cache_dir() { # dir [size MiB]
  local dir="$1" size="${2:-256}" img
  img="/tmp/cache-$(basename "$dir").img"
  truncate -s "${size}M" "$img" && mkfs.ext4 -q -F "$img" && mkdir -p "$dir" && mount -o loop "$img" "$dir" || fail "cannot make ext4 cache dir $dir"
}
wait_file() { # file [seconds]
  local i=0 n=$(( ${2:-60} * 10 ))
  while [ ! -s "$1" ]; do i=$((i+1)); [ "$i" -gt "$n" ] && fail "timed out waiting for $1"; sleep 0.1; done
}
# Unquoted on use (`$SERVE ... &`), so $! is the node pid and signals reach the daemon itself.
SERVE="$NODE $DIST/compat/guest/serve.js"
# Stop a daemon started in the background and wait for it to write its stats.
stop_daemon() { # pid
  kill -TERM "$1" 2>/dev/null; local i=0; while kill -0 "$1" 2>/dev/null; do i=$((i+1)); [ "$i" -gt 300 ] && { kill -KILL "$1"; fail "daemon $1 did not stop"; }; sleep 0.1; done
}
