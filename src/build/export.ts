/**
 * `ondemand export`: writes an image's tree to a local directory with the user-space reader —
 * data (holes stay holes), ownership, modes, nanosecond mtimes, xattrs, hard links, symlinks, devices.
 * Directory metadata is applied last, deepest first, so read-only directories can be filled.
 */
import { chmodSync, lchownSync, linkSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { OndemandError, FormatError } from '../util/errors.js';
import { mknod, setTimesNoFollow, S_IFBLK, S_IFCHR, S_IFIFO, S_IFSOCK } from '../native/fsops.js';
import { setXattr } from '../native/xattr.js';
import type { DeviceReader, ErofsReader } from '../format/erofs/reader.js';
import { makeDirs } from '../util/make-dirs.js';

const PIECE = 4 << 20;

export interface ExportStats {
  entries: number;
  files: number;
  bytes: number;
}

export async function exportTree(reader: ErofsReader, devices: DeviceReader, dest: string): Promise<ExportStats> {
  makeDirs(dest);
  if (readdirSync(dest).length > 0) throw new OndemandError('EEXIST', `export target ${dest} is not empty`, { path: dest });
  const destBytes = Buffer.from(dest.replace(/\/+$/, ''));
  const firstPath = new Map<number, Buffer>();
  const dirs: { path: Buffer; nid: number }[] = [];
  const stats: ExportStats = { entries: 0, files: 0, bytes: 0 };
  for (const e of reader.walk()) {
    stats.entries++;
    const path = e.path === '/' ? destBytes : Buffer.concat([destBytes, e.pathBytes]);
    const ino = reader.inode(e.nid);
    switch (e.kind) {
      case 'dir':
        if (e.path !== '/') mkdirSync(path, { mode: 0o700 });
        dirs.push({ path, nid: e.nid });
        continue;
      case 'file': {
        const first = firstPath.get(e.nid);
        if (first) {
          linkSync(first, path);
          continue;
        }
        firstPath.set(e.nid, path);
        stats.files++;
        const fh = await open(path, 'w', 0o600);
        try {
          for (const ext of reader.fileExtents(e.nid)) {
            if (ext.hole) continue;
            for (let at = 0; at < ext.length; at += PIECE) {
              const bytes = await reader.readFile(e.nid, ext.fileOffset + at, Math.min(PIECE, ext.length - at), devices);
              await fh.write(bytes, 0, bytes.length, ext.fileOffset + at);
              stats.bytes += bytes.length;
            }
          }
          await fh.truncate(ino.size);
        } finally {
          await fh.close();
        }
        break;
      }
      case 'symlink':
        symlinkSync(reader.readlink(e.nid), path);
        break;
      case 'chardev':
        mknod(path, S_IFCHR | 0o600, ino.rdevMajor, ino.rdevMinor);
        break;
      case 'blockdev':
        mknod(path, S_IFBLK | 0o600, ino.rdevMajor, ino.rdevMinor);
        break;
      case 'fifo':
        mknod(path, S_IFIFO | 0o600);
        break;
      case 'socket':
        mknod(path, S_IFSOCK | 0o600);
        break;
      default:
        throw new FormatError(`unknown node kind ${String(e.kind)}`, { path: e.path });
    }
    applyMetadata(reader, e.nid, path, e.kind === 'symlink');
  }
  for (let i = dirs.length - 1; i >= 0; i--) applyMetadata(reader, dirs[i]!.nid, dirs[i]!.path, false);
  return stats;
}

/** chown before chmod (chown clears setuid) and before xattrs (chown clears security.capability). */
function applyMetadata(reader: ErofsReader, nid: number, path: Buffer, isSymlink: boolean): void {
  const ino = reader.inode(nid);
  lchownSync(path, ino.uid, ino.gid);
  if (!isSymlink) chmodSync(path, ino.perm);
  for (const x of reader.xattrs(nid)) setXattr(path, x.name, x.value);
  setTimesNoFollow(path, ino.mtime, ino.mtimeNsec);
}
