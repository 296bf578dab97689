#!/usr/bin/env bash
# The demo: a local registry, a sample image (busybox + a bulk data file), a lazy mount, a program run
# from it, bytes fetched versus image size, unmount. Everything it starts or makes is undone on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
od() { node "$ROOT/bin/ondemand" "$@"; }
say() { printf '\n== %s\n' "$*"; }
fail() { echo "demo: $*" >&2; exit 1; }
unavailable() { echo "demo: step '$1' is not available yet: $2" >&2; exit 3; }

[ "$(id -u)" -eq 0 ] || fail "needs root (FUSE, erofs and loop mounts)"
[ -f "$ROOT/dist/src/cli/main.js" ] || fail "not built: run make build"
for t in docker-registry busybox curl chroot; do command -v "$t" >/dev/null || fail "missing $t (run make deps)"; done

WORK=$(mktemp -d /var/tmp/ondemand-demo.XXXXXX)
export ONDEMAND_RUN_DIR="$WORK/run" ONDEMAND_CACHE_DIR="$WORK/cache"
MNT="$WORK/mnt"
REG_PID=""
cleanup() {
  local rc=$?
  set +e
  if grep -q " $MNT " /proc/self/mountinfo 2>/dev/null; then od umount "$MNT" >/dev/null 2>&1 || umount -l "$MNT"; fi
  if [ -f "$ONDEMAND_RUN_DIR/daemon.pid" ]; then
    pid=$(cat "$ONDEMAND_RUN_DIR/daemon.pid"); kill "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  fi
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
  rm -rf "$WORK"
  [ $rc -eq 0 ] && echo "demo: done, everything cleaned up" || echo "demo: failed (exit $rc), everything cleaned up" >&2
  exit $rc
}
trap cleanup EXIT INT TERM

say "1. local registry (Debian docker-registry) on 127.0.0.1"
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
REG="127.0.0.1:$PORT"
mkdir -p "$WORK/registry"
cat >"$WORK/registry/config.yml" <<YAML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $WORK/registry/data}
  delete: {enabled: true}
http: {addr: $REG}
YAML
docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -fs "http://$REG/v2/" >/dev/null && break; sleep 0.05; done
curl -fs "http://$REG/v2/" >/dev/null || fail "registry did not start (see $WORK/registry/log)"
echo "registry at http://$REG (pid $REG_PID)"

say "2. sample tree: busybox-static, a few text files, 48 MiB of bulk data"
TREE="$WORK/tree"
mkdir -p "$TREE/bin" "$TREE/etc" "$TREE/data" "$TREE/tmp"
cp "$(command -v busybox)" "$TREE/bin/busybox"
for app in sh ls cat wc echo head sha256sum true uname; do ln -s busybox "$TREE/bin/$app"; done
echo "ondemand demo image" >"$TREE/etc/motd"
head -c $((48 * 1024 * 1024)) /dev/urandom >"$TREE/data/bulk.bin"
du -sh "$TREE" | sed 's/^/tree: /'

say "3. build the ondemand image into an OCI layout"
od build --help >/dev/null 2>&1 || unavailable build "ondemand build (image builder, issue 2) is missing"
od build "$TREE" "oci:$WORK/layout:demo"
IMAGE_BYTES=$(du -sb "$WORK/layout/blobs" | cut -f1)
echo "image: $IMAGE_BYTES bytes of blobs"

say "4. push it to the registry"
if od push --help >/dev/null 2>&1; then
  od push --insecure "oci:$WORK/layout:demo" "$REG/demo:latest"
elif command -v skopeo >/dev/null; then
  echo "(ondemand push is not available yet: using skopeo)"
  skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/layout:demo" "docker://$REG/demo:latest"
else
  unavailable push "neither ondemand push (issue 4) nor skopeo is available"
fi

say "5. mount it lazily"
mkdir -p "$MNT"
od detect | tail -1
od mount --insecure --image "$REG/demo:latest" "$MNT"

say "6. run a program from the image"
chroot "$MNT" /bin/sh -c 'cat /etc/motd; echo "busybox applets in /bin: $(ls /bin | wc -l)"; uname -sr'

say "7. bytes fetched versus image size"
STATUS=$(od status --json)
FETCHED=$(node -e 'const s=JSON.parse(process.argv[1]); console.log(s.mounts[0].bytesFetched)' "$STATUS")
node -e 'const [f,i]=process.argv.slice(1).map(Number); console.log(`fetched ${f} of ${i} bytes (${(100*f/i).toFixed(1)} %) to run /bin/sh from the image`)' "$FETCHED" "$IMAGE_BYTES"

say "8. unmount"
od umount "$MNT"
grep -q " $MNT " /proc/self/mountinfo && fail "still mounted"
echo "nothing left mounted at $MNT"
