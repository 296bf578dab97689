/**
 * Source trees for image tests, reusable by every area:
 * - makeHardCaseTree(dir): every corner case of issue 2 (sizes, sparse, links, devices, modes, owners,
 *   xattrs, odd names, a 20 000-entry dir, 100-deep nesting, extreme mtimes). Needs root.
 * - makeDebianTree(dir): a Debian bookworm minbase rootfs by debootstrap (cached as a tar under /var/tmp
 *   after the first run); returns a reason string instead when no Debian mirror is reachable.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync, closeSync, existsSync, lchownSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync,
  symlinkSync, writeFileSync, writeSync, ftruncateSync,
} from 'node:fs';
import { dirname, join as joinPath } from 'node:path';
import { DEBIAN_MINBASE_TAR } from '../../compat/scenarios.js';
import { makeTempDir } from './env.js';
import { mknod, setTimesNoFollow, S_IFBLK, S_IFCHR, S_IFIFO, S_IFSOCK } from '../../src/native/fsops.js';
import { setXattr } from '../../src/native/xattr.js';
import { LOCK_EX, tryFlock } from '../../src/native/flock.js';

export const GIB = 1024 ** 3;
export const MIB = 1024 ** 2;

export interface HardCaseTree {
  dir: string;
  /** Bytes of the 5 GiB sparse file (apparent size). */
  sparseSize: number;
}

const b = (s: string): Buffer => Buffer.from(s);
/** Raw-byte path join (names may be non-UTF-8). */
const join = (first: Buffer, ...parts: (string | Buffer)[]): Buffer => Buffer.concat([first, ...parts.flatMap((x) => [b('/'), typeof x === 'string' ? b(x) : x])]);

function writeSparse(path: Buffer, size: number, pieces: { offset: number; bytes: Buffer }[]): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    for (const p of pieces) writeSync(fd, p.bytes, 0, p.bytes.length, p.offset);
  } finally {
    closeSync(fd);
  }
}

/** A valid VFS_CAP_REVISION_2 security.capability value (cap_net_raw + cap_net_bind_service, effective). */
function capabilityValue(): Buffer {
  const v = Buffer.alloc(20);
  v.writeUInt32LE(0x02000001, 0); // revision 2 | effective
  v.writeUInt32LE((1 << 13) | (1 << 10), 4); // permitted low word
  return v;
}

export function makeHardCaseTree(dir: string): HardCaseTree {
  mkdirSync(dir, { recursive: true });
  const root = b(dir);
  const p = (...parts: (string | Buffer)[]): Buffer => join(root, ...parts);
  const mk = (...parts: (string | Buffer)[]): Buffer => {
    const path = p(...parts);
    mkdirSync(path, { recursive: true });
    return path;
  };

  mk('sizes');
  for (const [name, size] of [['size-0', 0], ['size-1', 1], ['size-4095', 4095], ['size-4096', 4096], ['size-4097', 4097],
    ['size-1m-minus-1', MIB - 1], ['size-1m', MIB], ['size-1m-plus-1', MIB + 1], ['size-2048', 2048], ['size-2049', 2049]] as const) {
    writeFileSync(p('sizes', name), randomBytes(size));
  }

  mk('sparse');
  const sparseSize = 5 * GIB;
  writeSparse(p('sparse', 'five-gib'), sparseSize, [{ offset: 3 * GIB + 12345, bytes: b('data in the middle of nowhere') }, { offset: sparseSize - 7, bytes: b('the end') }]);
  writeSparse(p('sparse', 'odd-offsets'), 10 * MIB + 333, [
    { offset: 1, bytes: b('x') }, { offset: 1_000_001, bytes: randomBytes(5000) }, { offset: MIB - 3, bytes: b('straddle') },
    { offset: 7 * MIB + 4095, bytes: randomBytes(3) },
  ]);
  writeSparse(p('sparse', 'all-hole'), 3 * MIB + 5, []);
  writeSparse(p('sparse', 'hole-tail'), 2 * MIB + 100, [{ offset: 0, bytes: randomBytes(4096) }]);

  mk('dedup');
  const twoMib = randomBytes(2 * MIB);
  writeFileSync(p('dedup', 'one'), twoMib);
  writeFileSync(p('dedup', 'two'), twoMib);
  writeFileSync(p('dedup', 'prefix'), Buffer.concat([twoMib.subarray(0, MIB), randomBytes(12345)]));

  mk('links', 'a');
  mk('links', 'b');
  mk('links', 'c', 'deeper');
  writeFileSync(p('links', 'a', 'file'), randomBytes(70000));
  linkSync(p('links', 'a', 'file'), p('links', 'b', 'hard'));
  linkSync(p('links', 'a', 'file'), p('links', 'c', 'deeper', 'third'));
  writeFileSync(p('links', 'a', 'small'), b('small linked'));
  linkSync(p('links', 'a', 'small'), p('links', 'b', 'small-too'));

  mk('symlinks');
  symlinkSync('../sizes/size-1', p('symlinks', 'relative'));
  symlinkSync('/etc/passwd', p('symlinks', 'absolute'));
  symlinkSync('nowhere/at/all', p('symlinks', 'dangling'));
  symlinkSync('long/'.repeat(800), p('symlinks', 'long-4000'));
  symlinkSync(Buffer.from([0x6e, 0xff, 0x2f, 0x80]), p('symlinks', 'non-utf8-target'));

  mk('special');
  mknod(p('special', 'fifo'), S_IFIFO | 0o644);
  mknod(p('special', 'null-like'), S_IFCHR | 0o666, 1, 3);
  mknod(p('special', 'disk-like'), S_IFBLK | 0o660, 8, 1);
  mknod(p('special', 'big-numbers'), S_IFCHR | 0o600, 300, 70000);
  mknod(p('special', 'whiteout'), S_IFCHR | 0o000, 0, 0);
  mknod(p('special', 'socket'), S_IFSOCK | 0o755);

  mk('modes');
  writeFileSync(p('modes', 'setuid'), b('#!/bin/sh\n'));
  chmodSync(p('modes', 'setuid'), 0o4755);
  writeFileSync(p('modes', 'setgid'), b('g'));
  chmodSync(p('modes', 'setgid'), 0o2711);
  writeFileSync(p('modes', 'mode-0000'), b('nobody reads me'));
  chmodSync(p('modes', 'mode-0000'), 0o000);
  mk('modes', 'sticky-dir');
  chmodSync(p('modes', 'sticky-dir'), 0o1777);
  mk('modes', 'dir-0000', 'inside');
  writeFileSync(p('modes', 'dir-0000', 'inside', 'f'), b('hidden'));
  mk('modes', 'setgid-dir');
  chmodSync(p('modes', 'setgid-dir'), 0o2775);

  mk('owners');
  writeFileSync(p('owners', 'big-ids'), b('owned by 100000:200000'));
  lchownSync(p('owners', 'big-ids'), 100000, 200000);
  mk('owners', 'dir-65536');
  lchownSync(p('owners', 'dir-65536'), 65536, 65537);
  symlinkSync('big-ids', p('owners', 'link-owned'));
  lchownSync(p('owners', 'link-owned'), 4000000000, 7);
  writeFileSync(p('owners', 'max-id'), b(''));
  lchownSync(p('owners', 'max-id'), 4294967294, 4294967294);

  mk('xattrs');
  writeFileSync(p('xattrs', 'user'), b('u'));
  setXattr(p('xattrs', 'user'), 'user.comment', b('hello'));
  writeFileSync(p('xattrs', 'capability'), randomBytes(10000));
  setXattr(p('xattrs', 'capability'), 'security.capability', capabilityValue());
  mk('xattrs', 'opaque');
  setXattr(p('xattrs', 'opaque'), 'trusted.overlay.opaque', b('y'));
  writeFileSync(p('xattrs', 'opaque', 'inner'), b('i'));
  writeFileSync(p('xattrs', 'big-value'), b('b'));
  setXattr(p('xattrs', 'big-value'), 'user.big', randomBytes(1800));
  writeFileSync(p('xattrs', 'many'), randomBytes(5000));
  for (let i = 0; i < 40; i++) setXattr(p('xattrs', 'many'), `user.attr-${String(i).padStart(2, '0')}`, b('v'.repeat(i % 17)));
  writeFileSync(p('xattrs', 'empty-value'), b('e'));
  setXattr(p('xattrs', 'empty-value'), 'user.empty', Buffer.alloc(0));
  for (const n of ['a', 'b', 'c']) {
    writeFileSync(p('xattrs', `shared-${n}`), b(n));
    setXattr(p('xattrs', `shared-${n}`), 'user.shared', b('same value on several inodes'));
  }
  symlinkSync('user', p('xattrs', 'link-with-trusted'));
  setXattr(p('xattrs', 'link-with-trusted'), 'trusted.on-a-link', b('t'));

  mk('names');
  writeFileSync(p('names', 'n'.repeat(255)), b('255'));
  writeFileSync(p('names', Buffer.from([0x66, 0xff, 0xfe, 0x80])), b('not utf-8'));
  writeFileSync(p('names', Buffer.from('caf\xe9', 'latin1')), b('latin1'));
  writeFileSync(p('names', 'unicode-ünï-😀'), b('utf-8'));
  writeFileSync(p('names', ' leading space'), b('s'));
  writeFileSync(p('names', 'new\nline'), b('nl'));
  mk('names', 'd'.repeat(255));

  mk('bigdir');
  for (let i = 0; i < 20000; i++) writeFileSync(p('bigdir', `entry-${String(i).padStart(5, '0')}`), i % 1000 === 0 ? b(`file ${i}`) : Buffer.alloc(0));

  mk('empty', 'a');
  mk('empty', 'b', 'c');

  let deep = mk('deep');
  for (let i = 0; i < 100; i++) deep = Buffer.concat([deep, b(`/d${i}`)]);
  mkdirSync(deep, { recursive: true });
  writeFileSync(Buffer.concat([deep, b('/leaf')]), b('bottom'));

  mk('times');
  writeFileSync(p('times', 'before-1970'), b('old'));
  writeFileSync(p('times', 'after-2038'), b('new'));
  writeFileSync(p('times', 'nanoseconds'), b('ns'));

  // Mtimes last, children before parents (creating a child changes its parent's mtime).
  let i = 0;
  const stamp = (path: Buffer): void => {
    const st = lstatSync(path);
    if (st.isDirectory()) for (const n of readdirSync(path, { encoding: 'buffer' })) stamp(Buffer.concat([path, b('/'), n]));
    i++;
    setTimesNoFollow(path, 1_600_000_000n + BigInt(i * 3607), (i * 7919 * 1013) % 1_000_000_000);
  };
  stamp(root);
  setTimesNoFollow(p('times', 'before-1970'), -86_400n * 365n, 123);
  setTimesNoFollow(p('times', 'after-2038'), 4_102_444_800n, 999_999_999);
  setTimesNoFollow(p('times', 'nanoseconds'), 1_700_000_000n, 1);
  setTimesNoFollow(p('times'), 1_700_000_001n, 2);
  return { dir, sparseSize };
}

/** Where the first successful debootstrap is kept (a pax tar with xattrs and ns mtimes); compat VMs read it too. */
export const DEBIAN_CACHE = DEBIAN_MINBASE_TAR;

function debianMirror(): string {
  const sources = '/etc/apt/sources.list.d/debian.sources';
  if (existsSync(sources)) {
    const m = /^URIs:\s*(\S+)/m.exec(readFileSync(sources, 'utf8'));
    if (m) return m[1]!;
  }
  return 'http://deb.debian.org/debian';
}

function mirrorReachable(mirror: string): boolean {
  try {
    execFileSync('curl', ['-sfI', '--max-time', '15', `${mirror}/dists/bookworm/Release`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const TAR_FLAGS = ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--format=posix'];

/**
 * Fills `dir` (empty or missing) with a Debian bookworm minbase rootfs. Returns undefined on success,
 * or the reason it could not (no debootstrap, no mirror, debootstrap failed).
 */
export function makeDebianTree(dir: string): string | undefined {
  mkdirSync(dir, { recursive: true });
  if (existsSync(DEBIAN_CACHE)) {
    execFileSync('tar', [...TAR_FLAGS, '-xpf', DEBIAN_CACHE, '-C', dir], { stdio: 'ignore' });
    return undefined;
  }
  // Test files run in parallel processes: one debootstrap, the others wait for its tarball.
  return withDebootstrapLock(() => (existsSync(DEBIAN_CACHE) ? makeDebianTree(dir) : debootstrapInto(dir)));
}

function withDebootstrapLock<T>(fn: () => T): T {
  mkdirSync(dirname(DEBIAN_CACHE), { recursive: true });
  const fd = openSync(`${DEBIAN_CACHE}.lock`, 'w');
  try {
    while (!tryFlock(fd, LOCK_EX)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
    return fn();
  } finally {
    closeSync(fd);
  }
}

function debootstrapInto(dir: string): string | undefined {
  if (!existsSync('/usr/sbin/debootstrap')) return 'debootstrap is not installed';
  const mirror = debianMirror();
  if (!mirrorReachable(mirror)) return `Debian mirror ${mirror} is not reachable`;
  try {
    execFileSync('/usr/sbin/debootstrap', ['--variant=minbase', 'bookworm', dir, mirror], { stdio: 'ignore', timeout: 15 * 60_000 });
  } catch (err) {
    return `debootstrap failed: ${(err as Error).message}`;
  }
  mkdirSync(dirname(DEBIAN_CACHE), { recursive: true });
  const tmp = `${DEBIAN_CACHE}.tmp-${process.pid}`;
  execFileSync('tar', [...TAR_FLAGS, '-cpf', tmp, '-C', dir, '.'], { stdio: 'ignore' });
  renameSync(tmp, DEBIAN_CACHE);
  return undefined;
}

/** Makes sure the minbase tarball exists (debootstrap once). Returns undefined, or why it could not. */
export function ensureDebianTar(): string | undefined {
  if (existsSync(DEBIAN_CACHE)) return undefined;
  const scratch = makeTempDir('debian-tar');
  try {
    return makeDebianTree(joinPath(scratch.dir, 'root'));
  } finally {
    scratch.remove();
  }
}
