/**
 * What this kernel supports, probed for real where that is cheap and safe: the one place ondemand
 * asks the kernel what it can do (mount/mode-choice.ts decides from the answers).
 *
 * cachefiles on-demand is two independent probes, both side-effect free for the system:
 *  1. erofs side: fsopen("erofs") + fsconfig(fsid=probe). Without CONFIG_EROFS_FS_ONDEMAND the kernel
 *     accepts the option but logs "fsid option not supported" into the fs_context log; EINVAL means a
 *     kernel older than 5.19.
 *  2. cachefiles side: open /dev/cachefiles, `dir <scratch>`, `bind ondemand`. EINVAL is the kernel
 *     refusing the "ondemand" argument (no CONFIG_CACHEFILES_ONDEMAND). Any other outcome means the
 *     argument was accepted: success, or EOPNOTSUPP when the scratch dir's fs cannot hold a cache (tmpfs).
 *     Closing the fd tears the probe cache down again. EBUSY means another daemon owns the device.
 */
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { constants as osConstants, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { MNT_DETACH, MS_NODEV, MS_NOSUID, MS_RDONLY, koffi, mount, umount2 } from '../native/libc.js';
import { AT_FDCWD, FAN_CLASS_PRE_CONTENT, FAN_CLOEXEC, FAN_MARK_ADD, FAN_PRE_ACCESS, fanotifyInit, fanotifyMark } from '../native/fanotify.js';
import {
  FSCONFIG_SET_STRING, FSOPEN_CLOEXEC, SYS_fsconfig, SYS_fsopen, lastErrno, syscallFsconfig, syscallFsopen,
} from '../native/cachefiles.js';
import { IN_HEADER_SIZE, InitFlag2, Opcode, decodeInHeader, decodeInitIn } from '../fuse/layout.js';
import { errorText, systemCode } from '../util/errors.js';
import { hasCapSysAdmin } from '../util/user-dirs.js';
import { CACHEFILES_DEVICE, deviceCommand, openDevice } from './fscache/device.js';

export interface Feature { supported: boolean; reason: string }
export const FEATURE_NAMES = [
  'mountSyscall', 'fusermount', 'cachefilesOndemand', 'erofs', 'erofsImages', 'erofsFileBacked', 'fuse', 'fusePassthrough', 'fanotifyPreContent', 'loop',
] as const;
export type FeatureName = (typeof FEATURE_NAMES)[number];
export type Features = Record<FeatureName, Feature>;

const isRoot = process.getuid?.() === 0;
const errnoName = (e: number): string => Object.entries(osConstants.errno).find(([, v]) => v === e)?.[0] ?? `errno ${e}`;

export function kernelVersion(): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release());
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}
const atLeast = (major: number, minor: number): boolean => {
  const [a, b] = kernelVersion();
  return a > major || (a === major && b >= minor);
};

function filesystems(): string[] {
  return readFileSync('/proc/filesystems', 'utf8').split('\n').map((l) => l.split('\t').pop()!.trim()).filter(Boolean);
}

/** A scratch dir on a real disk (tmpfs cannot back erofs file mounts nor take fanotify HSM marks). */
function scratch(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(process.env.ONDEMAND_TEST_TMP ?? '/var/tmp', 'ondemand-detect-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

function probeErofs(): Feature {
  if (filesystems().includes('erofs')) return { supported: true, reason: 'erofs is listed in /proc/filesystems' };
  try {
    execFileSync('modprobe', ['erofs'], { stdio: 'ignore' });
    if (filesystems().includes('erofs')) return { supported: true, reason: 'erofs module loaded (modprobe erofs)' };
  } catch { /* no module */ }
  return { supported: false, reason: 'erofs is not in /proc/filesystems and modprobe erofs failed' };
}

/** Mounts a tiny erofs image straight from a regular file with mount(2), as the daemon would. */
function probeErofsFileBacked(erofs: Feature): Feature {
  if (!erofs.supported) return { supported: false, reason: 'no erofs' };
  const byVersion = atLeast(6, 12);
  if (!isRoot) return { supported: byVersion, reason: `kernel ${release()} ${byVersion ? '>=' : '<'} 6.12 (not probed: needs root)` };
  let mkfs = true;
  try { execFileSync('sh', ['-c', 'command -v mkfs.erofs'], { stdio: 'ignore' }); } catch { mkfs = false; }
  if (!mkfs) return { supported: byVersion, reason: `kernel ${release()} ${byVersion ? '>=' : '<'} 6.12 (not probed: mkfs.erofs missing)` };
  const tmp = scratch();
  try {
    const src = join(tmp.dir, 'src');
    const img = join(tmp.dir, 'probe.erofs');
    const mnt = join(tmp.dir, 'mnt');
    execFileSync('mkdir', ['-p', src, mnt]);
    writeFileSync(join(src, 'probe'), 'ondemand');
    execFileSync('mkfs.erofs', ['--quiet', img, src], { stdio: 'ignore' });
    if (mount(img, mnt, 'erofs', MS_RDONLY, null) !== 0) {
      const e = koffi.errno();
      return { supported: false, reason: `mount(2) of an erofs image file failed with ${errnoName(e)}${e === 15 ? ' (kernel < 6.12 or no CONFIG_EROFS_FS_BACKED_BY_FILE)' : ''}` };
    }
    const ok = readFileSync(join(mnt, 'probe'), 'utf8') === 'ondemand';
    umount2(mnt, MNT_DETACH);
    return ok
      ? { supported: true, reason: 'probe: mount(2) of an erofs image file works' }
      : { supported: false, reason: 'probe: an erofs image file mounted but read back wrong' };
  } catch (err) {
    return { supported: byVersion, reason: `probe failed (${errorText(err)}); kernel ${release()}` };
  } finally {
    tmp.remove();
  }
}

/** Both halves of erofs-over-fscache (cachefiles `bind ondemand` and erofs `fsid=`), by the fscache transport's probe. */
function probeCachefiles(): Feature {
  if (!existsSync('/dev/cachefiles')) {
    try { execFileSync('modprobe', ['cachefiles'], { stdio: 'ignore' }); } catch { /* not built */ }
  }
  const r = detectCachefilesOndemand({ scratchParent: process.env.ONDEMAND_TEST_TMP ?? '/var/tmp' });
  return { supported: r.supported, reason: r.reason };
}

/** Mounts a FUSE file system and reads the kernel's INIT request: flags2 bit 5 is FUSE_PASSTHROUGH. */
function probeFuse(): { fuse: Feature; passthrough: Feature } {
  if (!existsSync('/dev/fuse') || !filesystems().includes('fuse')) {
    const no = { supported: false, reason: 'no /dev/fuse or fuse not in /proc/filesystems' };
    return { fuse: no, passthrough: { supported: false, reason: 'no FUSE' } };
  }
  const fuse = { supported: true, reason: '/dev/fuse present' };
  const byVersion = atLeast(6, 9);
  if (!isRoot) return { fuse, passthrough: { supported: byVersion, reason: `kernel ${release()} ${byVersion ? '>=' : '<'} 6.9 (not probed: needs root)` } };
  const tmp = scratch();
  const fd = openSync('/dev/fuse', constants.O_RDWR | constants.O_NONBLOCK);
  let mounted = false;
  try {
    const opts = `fd=${fd},rootmode=40000,user_id=0,group_id=0`;
    if (mount('ondemand-probe', tmp.dir, 'fuse.ondemand-probe', MS_RDONLY | MS_NOSUID | MS_NODEV, opts) !== 0) {
      return { fuse, passthrough: { supported: byVersion, reason: `FUSE probe mount failed (${errnoName(koffi.errno())}); kernel ${release()}` } };
    }
    mounted = true;
    const buf = Buffer.alloc(64 * 1024 + 4096 * 2);
    const n = readSync(fd, buf, 0, buf.length, null);
    // fuse_init_in is 16 bytes before protocol 7.36 (5.10 sends 7.32), 64 after: the decoder takes either.
    if (n < IN_HEADER_SIZE + 16 || decodeInHeader(buf).opcode !== Opcode.INIT) return { fuse, passthrough: { supported: false, reason: 'FUSE probe: first request was not INIT' } };
    const { major, minor, flags2 } = decodeInitIn(buf.subarray(IN_HEADER_SIZE, n));
    const passthrough = (flags2 & InitFlag2.PASSTHROUGH) !== 0;
    return {
      fuse: { supported: true, reason: `/dev/fuse present, protocol ${major}.${minor}` },
      passthrough: passthrough
        ? { supported: true, reason: `probe: the kernel offers FUSE_PASSTHROUGH in INIT (protocol ${major}.${minor})` }
        : { supported: false, reason: `probe: INIT (protocol ${major}.${minor}) does not offer FUSE_PASSTHROUGH (kernel < 6.9 or CONFIG_FUSE_PASSTHROUGH off)` },
    };
  } catch (err) {
    return { fuse, passthrough: { supported: byVersion, reason: `FUSE probe failed (${errorText(err)}); kernel ${release()}` } };
  } finally {
    if (mounted) umount2(tmp.dir, MNT_DETACH);
    closeSync(fd);
    tmp.remove();
  }
}

/** The nearest directory at or above `path` that exists (a cache dir not made yet lives on its parent's filesystem). */
function existingAncestor(path: string): string {
  let dir = path;
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

/**
 * fanotify_init(FAN_CLASS_PRE_CONTENT) + a FAN_PRE_ACCESS mark on a file in the cache dir (fanotify-hsm.md
 * §1): the kernel must have the events and the cache's filesystem must allow them (ext4, xfs, btrfs
 * do; tmpfs does not).
 */
function probeFanotify(cacheDir: string | undefined): Feature {
  if (!isRoot) return { supported: atLeast(6, 14), reason: `kernel ${release()} (not probed: FAN_CLASS_PRE_CONTENT needs CAP_SYS_ADMIN)` };
  const fd = fanotifyInit(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC, constants.O_RDONLY);
  if (fd < 0) return { supported: false, reason: `fanotify_init(FAN_CLASS_PRE_CONTENT) failed with ${errnoName(koffi.errno())}` };
  const where = cacheDir === undefined ? undefined : existingAncestor(cacheDir);
  let tmp: { dir: string; remove: () => void };
  try {
    tmp = where === undefined ? scratch() : { dir: mkdtempSync(join(where, '.ondemand-probe-')), remove: () => undefined };
  } catch (err) {
    closeSync(fd);
    return { supported: false, reason: `cannot probe in the cache dir ${where}: ${errorText(err)}` };
  }
  const dir = tmp.dir;
  try {
    const file = join(dir, 'probe');
    writeFileSync(file, '');
    if (fanotifyMark(fd, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, file) !== 0) {
      const e = koffi.errno();
      if (e === 95 /* EOPNOTSUPP */) return { supported: false, reason: `the cache dir's filesystem (${where ?? dir}) does not allow pre-content events (EOPNOTSUPP; ext4, xfs and btrfs do)` };
      return { supported: false, reason: `FAN_PRE_ACCESS mark refused with ${errnoName(e)}${e === 22 ? ' (kernel < 6.14)' : ''}` };
    }
    return { supported: true, reason: `probe: FAN_PRE_ACCESS mark accepted on a file in ${where ?? '/var/tmp'}` };
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
    tmp.remove();
  }
}

/** Attaches a read-only loop device to `file` (for the probe on kernels without file-backed erofs). */
function probeLoopDevice(file: string): string {
  return execFileSync('losetup', ['--find', '--show', '--read-only', file], { encoding: 'utf8' }).trim();
}

/**
 * Whether this kernel's erofs mounts images like ours: chunk-based files (5.15) whose chunks live on an
 * extra device (5.16). Probed by mounting a tiny mkfs.erofs image of that kind (from a file, or loop
 * devices on kernels without file-backed mounts) and reading its file back.
 */
function probeErofsImages(erofs: Feature, fileBacked: Feature, loop: Feature): Feature {
  if (!erofs.supported) return { supported: false, reason: 'no erofs' };
  const byVersion = atLeast(5, 16);
  const guess = (why: string): Feature => ({ supported: byVersion, reason: `kernel ${release()} ${byVersion ? '>=' : '<'} 5.16 (not probed: ${why})` });
  if (!isRoot) return guess('needs root');
  try { execFileSync('sh', ['-c', 'command -v mkfs.erofs'], { stdio: 'ignore' }); } catch { return guess('mkfs.erofs missing'); }
  if (!fileBacked.supported && !loop.supported) return guess('neither file-backed erofs nor loop devices');
  const tmp = scratch();
  const loops: string[] = [];
  let mnt: string | undefined;
  try {
    const src = join(tmp.dir, 'src');
    const img = join(tmp.dir, 'meta.erofs');
    const blob = join(tmp.dir, 'blob');
    execFileSync('mkdir', ['-p', src, join(tmp.dir, 'mnt')]);
    const content = Buffer.alloc(8192, 'ondemand');
    writeFileSync(join(src, 'probe'), content);
    execFileSync('mkfs.erofs', ['--quiet', '--chunksize=4096', `--blobdev=${blob}`, img, src], { stdio: 'ignore' });
    const [source, device] = fileBacked.supported ? [img, blob] : [probeLoopDevice(img), probeLoopDevice(blob)];
    if (!fileBacked.supported) loops.push(source, device);
    if (mount(source, join(tmp.dir, 'mnt'), 'erofs', MS_RDONLY, `device=${device}`) !== 0) {
      const e = koffi.errno();
      return { supported: false, reason: `probe: erofs refused an image with chunk-based files on an extra device (${errnoName(e)}; erofs learned chunk-based files in 5.15 and extra devices in 5.16)` };
    }
    mnt = join(tmp.dir, 'mnt');
    return readFileSync(join(mnt, 'probe')).equals(content)
      ? { supported: true, reason: 'probe: erofs mounts chunk-based files on an extra device' }
      : { supported: false, reason: 'probe: a chunk-based image on an extra device mounted but read back wrong' };
  } catch (err) {
    return { supported: byVersion, reason: `probe failed (${errorText(err)}); kernel ${release()}` };
  } finally {
    if (mnt !== undefined) umount2(mnt, MNT_DETACH);
    for (const l of loops) { try { execFileSync('losetup', ['--detach', l], { stdio: 'ignore' }); } catch { /* autoclear */ } }
    tmp.remove();
  }
}

/** CAP_SYS_ADMIN (bit 21 of CapEff): mount(2) of erofs and FUSE, loop devices, fanotify, cachefiles. */
function probeMountSyscall(): Feature {
  return hasCapSysAdmin() ? { supported: true, reason: 'CAP_SYS_ADMIN: mount(2) works' } : { supported: false, reason: 'not root (no CAP_SYS_ADMIN): the kernel mounts only FUSE for this user, through fusermount3' };
}

/** fusermount3 (fuse3), set-user-id root: how an unprivileged user mounts FUSE. */
function probeFusermount(): Feature {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/bin', '/bin'])) {
    const path = join(dir, 'fusermount3');
    try {
      const st = statSync(path);
      if (st.uid === 0 && (st.mode & 0o4000) !== 0) return { supported: true, reason: `${path} is set-user-id root` };
      return { supported: false, reason: `${path} is not set-user-id root` };
    } catch {
      // not in this directory
    }
  }
  return { supported: false, reason: 'fusermount3 not found (Debian package fuse3)' };
}

function probeLoop(): Feature {
  if (!existsSync('/dev/loop-control')) return { supported: false, reason: 'no /dev/loop-control' };
  try {
    execFileSync('sh', ['-c', 'command -v losetup'], { stdio: 'ignore' });
  } catch {
    return { supported: false, reason: '/dev/loop-control present but losetup (util-linux) is missing' };
  }
  return { supported: true, reason: '/dev/loop-control present' };
}

/** What this kernel can do; `cacheDir`: the cache whose filesystem the fanotify transport would mark. */
export function probeFeatures(cacheDir?: string): Features {
  const erofs = probeErofs();
  const { fuse, passthrough } = probeFuse();
  const erofsFileBacked = probeErofsFileBacked(erofs);
  const loop = probeLoop();
  return {
    mountSyscall: probeMountSyscall(),
    fusermount: probeFusermount(),
    cachefilesOndemand: probeCachefiles(),
    erofs,
    erofsImages: probeErofsImages(erofs, erofsFileBacked, loop),
    erofsFileBacked,
    fuse,
    fusePassthrough: passthrough,
    fanotifyPreContent: probeFanotify(cacheDir),
    loop,
  };
}

export function detectCachefilesOndemand(opts: { scratchParent?: string } = {}): Feature {
  let filesystems = '';
  try {
    filesystems = readFileSync('/proc/filesystems', 'utf8');
  } catch {
    // no /proc: the probes below still tell
  }
  if (filesystems !== '' && !/\serofs$/m.test(filesystems)) {
    return { supported: false, reason: 'erofs is not in /proc/filesystems (no CONFIG_EROFS_FS or module not loaded)' };
  }
  const erofs = probeErofsFsid();
  if (!erofs.supported) return erofs;
  const cf = probeCachefilesBind(opts.scratchParent ?? tmpdir());
  if (!cf.supported) return cf;
  return { supported: true, reason: `${erofs.reason}; ${cf.reason}` };
}

/** fsopen/fsconfig probe of erofs's fsid option. */
export function probeErofsFsid(): Feature {
  const fd = syscallFsopen(SYS_fsopen, 'erofs', FSOPEN_CLOEXEC);
  if (fd < 0) {
    const e = lastErrno();
    if (e === 19) return { supported: false, reason: 'fsopen("erofs") failed with ENODEV: no erofs in this kernel' };
    if (e === 1) return { supported: false, reason: 'fsopen needs CAP_SYS_ADMIN (run as root)' };
    return { supported: false, reason: `fsopen("erofs") failed: errno ${e}` };
  }
  try {
    const rc = syscallFsconfig(SYS_fsconfig, fd, FSCONFIG_SET_STRING, 'fsid', 'ondemand-probe', 0);
    if (rc < 0) {
      const e = lastErrno();
      return { supported: false, reason: e === 22 ? 'erofs does not know fsid= (kernel older than 5.19)' : `fsconfig(fsid) failed: errno ${e}` };
    }
    const log = readFsContextLog(fd);
    if (/fsid option not supported/.test(log)) {
      return { supported: false, reason: 'erofs says "fsid option not supported": kernel built without CONFIG_EROFS_FS_ONDEMAND' };
    }
    return { supported: true, reason: 'erofs accepts fsid= (EROFS_FS_ONDEMAND)' };
  } finally {
    closeSync(fd);
  }
}

function readFsContextLog(fd: number): string {
  const buf = Buffer.alloc(1024);
  const lines: string[] = [];
  for (let i = 0; i < 16; i++) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch {
      break; // ENODATA: log empty
    }
    if (n <= 0) break;
    lines.push(buf.toString('utf8', 0, n));
  }
  return lines.join('\n');
}

/** `bind ondemand` probe on a scratch dir. */
export function probeCachefilesBind(scratchParent: string): Feature {
  let fd: number;
  try {
    fd = openDevice(CACHEFILES_DEVICE);
  } catch (err) {
    return { supported: false, reason: errorText(err) };
  }
  const dir = mkdtempSync(join(scratchParent, 'ondemand-detect-'));
  try {
    deviceCommand(fd, `dir ${dir}`);
    try {
      deviceCommand(fd, 'bind ondemand');
      return { supported: true, reason: 'cachefiles accepts "bind ondemand" (CACHEFILES_ONDEMAND)' };
    } catch (err) {
      const code = systemCode(err);
      if (code === 'EINVAL') return { supported: false, reason: 'cachefiles refuses "bind ondemand" with EINVAL: kernel built without CONFIG_CACHEFILES_ONDEMAND' };
      return { supported: true, reason: `cachefiles accepts the "ondemand" bind argument (the scratch bind itself failed with ${String(code)}, as on tmpfs)` };
    }
  } catch (err) {
    return { supported: false, reason: `cachefiles probe failed: ${errorText(err)}` };
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}
