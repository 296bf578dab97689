/**
 * What systemd is doing with the unit this process runs in, asked with `systemctl` (systemd's own
 * client; nothing to keep in step with its D-Bus API). Only for processes systemd started: the
 * daemon, and the fanotify group holder it spawns (same cgroup, same unit).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const QUERY_MS = 10_000;

/** This process's systemd service ("0::/system.slice/ondemand.service" in /proc/self/cgroup), or null when systemd did not start it. */
export function ownUnit(): string | null {
  if (process.env.INVOCATION_ID === undefined) return null;
  let cgroup: string;
  try {
    cgroup = readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    return null;
  }
  const unit = cgroup.split('\n').find((l) => l.startsWith('0::'))?.split('/').pop();
  return unit !== undefined && unit.endsWith('.service') ? unit : null;
}

/** The types of the jobs queued or running for `unit` ("restart", "stop", "start", ...). */
export async function unitJobs(unit: string): Promise<string[]> {
  const { stdout } = await run('systemctl', ['list-jobs', '--no-legend', '--plain', unit], { timeout: QUERY_MS });
  return stdout.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f[1] === unit).map((f) => f[2] ?? '');
}

/** One property of `unit` (systemctl show --value). */
export async function unitProperty(unit: string, property: string): Promise<string> {
  return (await run('systemctl', ['show', `--property=${property}`, '--value', unit], { timeout: QUERY_MS })).stdout.trim();
}

/**
 * Whether systemd is bringing the service back: starting it (Restart= after a crash waits in
 * "activating"/"auto-restart") or running a start or restart job for it. False when it stays down.
 */
export async function systemdBringsBack(unit: string): Promise<boolean> {
  const state = await unitProperty(unit, 'ActiveState');
  if (state === 'activating' || state === 'reloading') return true;
  return (await unitJobs(unit)).some((j) => j === 'start' || j === 'restart');
}
