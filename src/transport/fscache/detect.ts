/**
 * Does this kernel support erofs over cachefiles on-demand? Two independent probes, both side-effect free
 * for the system:
 *  1. erofs side: fsopen("erofs") + fsconfig(fsid=probe). Without CONFIG_EROFS_FS_ONDEMAND the kernel
 *     accepts the option but logs "fsid option not supported" into the fs_context log; EINVAL means a
 *     kernel older than 5.19.
 *  2. cachefiles side: open /dev/cachefiles, `dir <scratch>`, `bind ondemand`. EINVAL is the kernel
 *     refusing the "ondemand" argument (no CONFIG_CACHEFILES_ONDEMAND). Any other outcome means the
 *     argument was accepted: success, or EOPNOTSUPP when the scratch dir's fs cannot hold a cache (tmpfs).
 *     Closing the fd tears the probe cache down again.
 * EBUSY means another daemon owns the device (one per host): reported as unsupported with that reason.
 */
import { closeSync, mkdtempSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FSCONFIG_SET_STRING, FSOPEN_CLOEXEC, SYS_fsconfig, SYS_fsopen, lastErrno, syscallFsconfig, syscallFsopen,
} from '../../native/cachefiles.js';
import { errorText, systemCode } from '../../util/errors.js';
import { CACHEFILES_DEVICE, deviceCommand, openDevice } from './device.js';

export interface OndemandSupport {
  supported: boolean;
  reason: string;
}

export interface DetectOptions {
  /** Directory in which a scratch cache dir is made for the bind probe (default: os.tmpdir()). */
  scratchParent?: string;
}

export function detectCachefilesOndemand(opts: DetectOptions = {}): OndemandSupport {
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
export function probeErofsFsid(): OndemandSupport {
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
    let n = 0;
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
export function probeCachefilesBind(scratchParent: string): OndemandSupport {
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
