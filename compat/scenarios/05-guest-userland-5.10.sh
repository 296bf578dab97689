# kernel: 5.10
# mode: -
# timeout: 300
# proves: the guest userland (the host's Debian 12 binaries and node 20) runs under Debian 11's 5.10:
#   node starts and does file, statx, getrandom, worker-thread, child-process, TCP and Unix-socket work;
#   the syscalls the daemon makes beyond node's exist (pidfd_open 5.3, pidfd_getfd 5.6, fsopen 5.2,
#   close_range 5.9, copy_file_range, fallocate hole punching, SEEK_DATA on ext4); which of statx and
#   io_uring node uses here is printed (strace), and what `ondemand detect` finds.
case "$(uname -r)" in 5.10.*) ;; *) fail "not a 5.10 kernel: $(uname -r)" ;; esac
note "kernel $(uname -r), node $($NODE --version), libuv $($NODE -p process.versions.uv)"
mk_cache_dir /tmp/ext4 64
cat > /tmp/u.js <<'JS'
const fs = require('fs'), net = require('net'), cp = require('child_process'), crypto = require('crypto');
const { Worker } = require('worker_threads');
(async () => {
  const st = fs.statSync('/tmp/ext4', { bigint: true });
  if (st.ino === 0n) throw new Error('stat');
  fs.writeFileSync('/tmp/ext4/f', crypto.randomBytes(1 << 20));
  const a = await fs.promises.readFile('/tmp/ext4/f');
  fs.copyFileSync('/tmp/ext4/f', '/tmp/ext4/g');
  if (!a.equals(fs.readFileSync('/tmp/ext4/g'))) throw new Error('copy');
  const w = await new Promise((res, rej) => { const t = new Worker("require('worker_threads').parentPort.postMessage(6*7)", { eval: true }); t.on('message', res); t.on('error', rej); });
  if (w !== 42) throw new Error('worker');
  if (cp.execFileSync('/bin/echo', ['ok']).toString().trim() !== 'ok') throw new Error('child');
  for (const where of [0, '/tmp/u.sock']) {
    const srv = net.createServer((s) => s.end('pong')).listen(where);
    await new Promise((r) => srv.on('listening', r));
    const addr = typeof where === 'string' ? where : srv.address().port;
    const got = await new Promise((res, rej) => { let d = ''; net.connect(addr).on('data', (x) => (d += x)).on('end', () => res(d)).on('error', rej); });
    srv.close();
    if (got !== 'pong') throw new Error('socket');
  }
  console.log('node userland ok');
})().catch((e) => { console.error(e); process.exit(1); });
JS
strace -f -qq -e trace=statx,io_uring_setup,getrandom -o /tmp/strace.out $NODE /tmp/u.js || { cat /tmp/strace.out | tail -20; fail "node userland"; }
note "statx calls: $(grep -c 'statx(' /tmp/strace.out), failed: $(grep 'statx(' /tmp/strace.out | grep -c '= -1')"
note "io_uring_setup calls: $(grep -c 'io_uring_setup(' /tmp/strace.out) ($(grep -m1 'io_uring_setup(' /tmp/strace.out | sed 's/.*= //' || true))"
note "getrandom calls: $(grep -c 'getrandom(' /tmp/strace.out), failed: $(grep 'getrandom(' /tmp/strace.out | grep -c '= -1')"
# libuv leaves io_uring off unless asked (UV_USE_IO_URING=1): see whether it would work here.
UV_USE_IO_URING=1 strace -f -qq -e trace=io_uring_setup -o /tmp/strace-uring.out $NODE /tmp/u.js || fail "node userland with UV_USE_IO_URING=1"
note "with UV_USE_IO_URING=1: $(grep -c 'io_uring_setup(' /tmp/strace-uring.out) io_uring_setup call(s) ($(grep -m1 'io_uring_setup(' /tmp/strace-uring.out | sed 's/.*= //' || true)), node userland ok"
cat > /tmp/s.js <<'JS'
// The syscalls the daemon makes through koffi that node itself does not, by number (x86_64).
const koffi = require(process.env.REPO + '/node_modules/koffi');
const libc = koffi.load('libc.so.6');
const syscall = libc.func('long syscall(long n, long a, long b, long c)');
const errno = () => koffi.errno();
const fs = require('fs');
const out = {};
const pidfd = Number(syscall(434, process.pid, 0, 0)); out.pidfd_open = pidfd >= 0 ? 'ok' : `errno ${errno()}`;
const dup = pidfd >= 0 ? Number(syscall(438, pidfd, 0, 0)) : -1; out.pidfd_getfd = dup >= 0 ? 'ok' : `errno ${errno()}`;
const fsopen = libc.func('long syscall(long n, str name, long flags)');
const fsfd = Number(fsopen(430, "erofs", 1)); out.fsopen_erofs = fsfd >= 0 ? 'ok' : `errno ${errno()}`;
const cr = Number(syscall(436, 1000, 1010, 0)); out.close_range = cr === 0 ? 'ok' : `errno ${errno()}`;
const fallocate = libc.func('int fallocate(int fd, int mode, int64_t off, int64_t len)');
const fd = fs.openSync('/tmp/ext4/f', 'r+');
out.punch_hole = fallocate(fd, 3, 0, 65536) === 0 ? 'ok' : `errno ${errno()}`;
const lseek = libc.func('int64_t lseek(int fd, int64_t off, int whence)');
const data = Number(lseek(fd, 0, 3)); out.seek_data = data === 65536 ? "ok" : `got ${data}`;
console.log(JSON.stringify(out));
process.exit(Object.values(out).every((v) => v === 'ok') ? 0 : 1);
JS
REPO="$REPO" $NODE /tmp/s.js > out/syscalls.json || { cat out/syscalls.json; fail "a syscall the daemon needs is missing"; }
note "daemon syscalls: $(cat out/syscalls.json)"
dmesg | grep -iE 'erofs|fuse' | head -5
$NODE "$REPO/bin/ondemand" detect > out/detect.txt 2>&1 || { cat out/detect.txt; fail "detect"; }
cat out/detect.txt
note PASS
