# kernel: 5.10
# mode: auto
# timeout: 900
# proves: on 5.10 (FUSE without passthrough and without FUSE_NOTIFY_RESEND, 6.9) the real daemon's
#   worker SIGKILLed during a cold whole-tree read of a fuse-tree mount (`--mode auto`) leaves every
#   reader with the right bytes or a clean error, never a hang and never wrong bytes (zeros): each
#   file's sha256 read during the kill is the source's or an error is reported for it, the reader ends
#   within 180 s of the kill, and so does a second whole-tree read after the supervisor restarted the
#   worker; `ondemand umount` then unmounts, and the image mounted again reads right.
. "$REPO/compat/scenarios/registry.inc"
case "$(uname -r)" in 5.10.*) ;; *) fail "not a 5.10 kernel: $(uname -r)" ;; esac
mountpoint -q /sys/fs/fuse/connections || mount -t fusectl fusectl /sys/fs/fuse/connections
start_registry 1024
mkdir -p /tmp/s1/d /tmp/mnt/a
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do head -c 4194304 /dev/urandom > /tmp/s1/d/file$i; done
seq 1 400000 > /tmp/s1/seq.txt; ln -s seq.txt /tmp/s1/link
build_push /tmp/s1 x:one
(cd /tmp/s1 && find . -type f | sort | xargs sha256sum) > /tmp/want
$OD mount --insecure --image "$REG/x:one" /tmp/mnt/a || fail "mount"
m=$(mode_of /tmp/mnt/a); [ "$m" = fuse-tree ] || fail "auto picked $m, not fuse-tree"
worker=$($OD status --json | "$NODE" -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).daemon.workerPid))")
[ -n "$worker" ] && kill -0 "$worker" || fail "no worker pid in status"

# Diagnostics for a reader that does not end, from what cannot block on the FUSE mount itself (no
# /proc/PID/cmdline, which takes the process's mmap lock): each process's state and wait channel, the
# FUSE requests waiting. Then the connection is aborted (its readers get ENOTCONN) so the VM can report.
stuck() { # what seconds
  note "$1 still running $2 s after the kill"
  for st in /proc/[0-9]*/stat; do
    p=${st#/proc/}; p=${p%/stat}
    read -r _ comm state _ < "$st" 2>/dev/null || continue
    case "$state" in D|S) ;; *) continue ;; esac
    case "$comm" in "(sha256sum)"|"(xargs)"|"(find)"|"(node)") note "  pid $p $comm $state wchan $(cat /proc/$p/wchan 2>/dev/null)" ;; esac
  done
  for c in /sys/fs/fuse/connections/*; do note "FUSE connection $(basename "$c"): $(cat "$c/waiting") request(s) waiting"; done
  for c in /sys/fs/fuse/connections/*; do echo 1 > "$c/abort"; done
  timeout 20 $OD status 2>&1 | tail -5
  fail "$1 hung after the worker was killed (see above)"
}
# Waits up to $3 s (wall clock) for a background reader; a hang otherwise.
wait_reader() { # pid what seconds
  local until=$(( $(date +%s) + $3 ))
  while kill -0 "$1" 2>/dev/null; do [ "$(date +%s)" -ge "$until" ] && stuck "$2" "$3"; sleep 0.2; done
  wait "$1" 2>/dev/null
}
# Every hash read must be the source's; a file without a hash must have an error naming it or one of
# its directories (the mount's root included). Prints "right errors" (run in $(...): check its status).
judge() { # got err
  local right=0 errors=0 line name p named
  while IFS= read -r line; do
    grep -qxF "$line" /tmp/want || fail "wrong bytes read (zeros?): $line (want $(awk -v n="${line#*  }" 'substr($0, 67) == n' /tmp/want | cut -c1-16)...)"
    right=$((right+1))
  done < "$1"
  while IFS= read -r line; do
    name="${line#*  }"
    awk -v n="$name" 'substr($0, 67) == n { f = 1 } END { exit !f }' "$1" && continue
    # sha256sum names the file ("sha256sum: ./d/f: ..."), find a directory ("find: ‘./d’: ...").
    named=0; p="$name"
    grep -qF "sha256sum: $name:" "$2" && named=1
    while [ "$named" = 0 ] && [ "$p" != . ]; do p="${p%/*}"; grep -qF "‘$p’:" "$2" && named=1; done
    [ "$named" = 1 ] || fail "no hash and no error for $name"
    errors=$((errors+1))
  done < /tmp/want
  echo "$right $errors"
}
sums() { (cd /tmp/mnt/a && find . -type f | sort | xargs -r sha256sum) > "$1" 2> "$2"; }

sums /tmp/got1 /tmp/err1 &
R=$!
# Kill once the read is well under way: some bytes fetched, not all.
i=0
while :; do
  f=$(fetched /tmp/mnt/a); [ "${f:-0}" -gt 2000000 ] 2>/dev/null && break
  i=$((i+1)); [ "$i" -gt 300 ] && fail "the cold read made no progress"; sleep 0.2
done
kill -0 "$R" 2>/dev/null || fail "the read finished before the kill: nothing was in flight"
kill -KILL "$worker"
note "worker $worker killed after $f of $(du -cb /tmp/s1/d /tmp/s1/seq.txt | tail -1 | cut -f1) bytes fetched"
wait_reader "$R" "the whole-tree read during the kill" 180
cat /tmp/err1
r=$(judge /tmp/got1 /tmp/err1) || exit 1
set -- $r
note "read during the kill: $1 file(s) right, $2 error(s), no wrong bytes"

i=0
until new=$($OD status --json 2>/dev/null | "$NODE" -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const d=JSON.parse(s).daemon;console.log(d.workerPid+' '+d.workerRestarts)})") && [ "${new%% *}" != "$worker" ]; do
  i=$((i+1)); [ "$i" -gt 60 ] && fail "the worker was not restarted"; sleep 1
done
note "worker now: pid restarts = $new"
sums /tmp/got2 /tmp/err2 &
R=$!
wait_reader "$R" "the whole-tree read after the restart" 180
cat /tmp/err2
r=$(judge /tmp/got2 /tmp/err2) || exit 1
set -- $r
note "read after the restart: $1 file(s) right, $2 error(s), no wrong bytes"
$OD status 2>&1 | tail -4
$OD umount /tmp/mnt/a || fail "umount"
grep -q ' /tmp/mnt/' /proc/mounts && fail "mounts left"
# Whatever the kill left, a new mount of the image reads it right.
$OD mount --insecure --image "$REG/x:one" /tmp/mnt/a || fail "mount again"
(cd /tmp/mnt/a && sha256sum -c --quiet /tmp/want) || fail "the image mounted again reads wrong"
note "mounted again: every file right, $(fetched /tmp/mnt/a) bytes fetched"
$OD umount /tmp/mnt/a || fail "umount"
note PASS
