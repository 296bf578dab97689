/** Reading /proc/self/mountinfo: which paths are mount points, and with what. */
import { readFileSync } from 'node:fs';

export interface MountInfoEntry {
  mountpoint: string;
  fstype: string;
  source: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function readMountInfo(): MountInfoEntry[] {
  const entries: MountInfoEntry[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    if (sep < 0 || fields.length < sep + 3) continue;
    entries.push({ mountpoint: unescape(fields[4]!), fstype: fields[sep + 1]!, source: unescape(fields[sep + 2]!) });
  }
  return entries;
}

export function isMountPoint(path: string): boolean {
  return readMountInfo().some((m) => m.mountpoint === path);
}
