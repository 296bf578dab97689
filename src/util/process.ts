/** Whether a process runs. */
import { readFileSync } from 'node:fs';

/** Whether `pid` exists and is not a zombie (a zombie holds no fd and waits for nothing any more). */
export function isRunning(pid: number): boolean {
  try {
    // /proc/PID/stat: "pid (comm) S ...": the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const at = stat.lastIndexOf(')') + 2;
    return stat.slice(at, at + 1) !== 'Z';
  } catch {
    return false;
  }
}
