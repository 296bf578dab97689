/**
 * systemd as PID 1 in namespaces of its own, for tests of the daemon as a service on a host whose init
 * is not systemd: new mount, PID, UTS and IPC namespaces, the host's root filesystem (so the build and
 * Node are there), a tmpfs /run with the test's units (the only units it knows), a tmpfs /var/log (the
 * journal), and a cgroup of its own on the host's cgroup2 hierarchy (its cgroup namespace's root). It
 * boots a target that starts nothing; tests start units with `systemctl` inside. Mounts made inside
 * stay inside, and go when the container is killed.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DROP_IMAGE_MOUNTS_SH } from '../../src/util/mount-namespace.js';

const SYSTEMD = '/lib/systemd/systemd';
const CGROUP2 = '/sys/fs/cgroup/unified';

export interface RunResult { code: number; stdout: string; stderr: string }

export interface SystemdContainer {
  /** systemd's pid on the host (1 inside). */
  pid: number;
  /** A command inside (its mount and PID namespaces), with `env` added to the host's environment. */
  run(command: string, args: string[], env?: NodeJS.ProcessEnv, timeoutMs?: number): Promise<RunResult>;
  /** The same, throwing with stderr unless it exits 0; its stdout. */
  ok(command: string, args: string[], env?: NodeJS.ProcessEnv, timeoutMs?: number): Promise<string>;
  /** Kills everything inside; its mounts go with its mount namespace. */
  stop(): Promise<void>;
}

/** Why systemd cannot be booted here, or null when it can. */
export function systemdContainerMissing(): string | null {
  if (!existsSync(SYSTEMD)) return `${SYSTEMD} (Debian's systemd)`;
  if (!existsSync(join(CGROUP2, 'cgroup.procs'))) return `a cgroup2 hierarchy at ${CGROUP2}`;
  for (const c of ['unshare', 'nsenter', 'systemctl']) {
    if (!['/usr/bin', '/bin', '/usr/sbin', '/sbin'].some((d) => existsSync(join(d, c)))) return c;
  }
  return null;
}

/** Removes a cgroup and the cgroups under it, deepest first (they must be empty of processes). */
function removeCgroup(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroup(join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch {
    // still has processes a moment longer: the next run's name differs
  }
}

/** The devices (major:minor) of the FUSE mounts in the mount namespace of `pid`. */
function fuseDevicesInside(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').map((l) => l.split(' '))
      .filter((f) => { const sep = f.indexOf('-'); return sep > 0 && (f[sep + 1] ?? '').startsWith('fuse'); }).map((f) => f[2]!);
  } catch {
    return [];
  }
}

/** Detaches the loop devices whose backing file lives on one of `devices`. */
async function detachLoopsOn(devices: string[]): Promise<void> {
  if (devices.length === 0) return;
  const list = await new Promise<string>((resolve) =>
    execFile('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-MAJ:MIN'], (_e, out) => resolve(out ?? '')));
  for (const [name, back] of list.split('\n').map((l) => l.trim().split(/\s+/))) {
    if (name && back && devices.includes(back)) await new Promise((resolve) => execFile('losetup', ['--detach', name], resolve));
  }
}

/** Boots systemd with `units` (file name → text) in /run/systemd/system; resolves once it answers systemctl. */
export async function bootSystemd(name: string, units: Record<string, string>, workDir: string): Promise<SystemdContainer> {
  const unitDir = join(workDir, 'units');
  mkdirSync(unitDir, { recursive: true });
  // Only these units exist (SYSTEMD_UNIT_PATH): the targets a service's default dependencies name are
  // empty here. With the host's units, sysinit.target would run the host's early-boot services
  // (systemd-tmpfiles-setup would empty the host's /tmp).
  for (const target of ['boot', 'sysinit', 'basic', 'shutdown']) writeFileSync(join(unitDir, `${target}.target`), '[Unit]\nDefaultDependencies=no\n');
  writeFileSync(join(unitDir, 'system.slice'), '[Unit]\nDefaultDependencies=no\n[Slice]\n');
  for (const [file, text] of Object.entries(units)) writeFileSync(join(unitDir, file), text);
  const cgroup = join(CGROUP2, `${name}-${process.pid}-${Date.now()}`);
  mkdirSync(cgroup);
  // In the new namespaces: private mounts, /run and the cgroup tree of our own, then systemd as PID 1.
  // Other tests' image mounts are dropped: a copy here would hold them for as long as systemd runs.
  const script = `set -e
${DROP_IMAGE_MOUNTS_SH}
mount --make-rprivate /
drop_image_mounts ''
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=755 tmpfs /var/log
mkdir -p /run/systemd/system
cp ${unitDir}/* /run/systemd/system/
echo $$ > ${cgroup}/cgroup.procs
exec unshare --cgroup sh -c 'umount -l /sys/fs/cgroup; mount -t cgroup2 cgroup2 /sys/fs/cgroup; exec env -i container=ondemand-test SYSTEMD_UNIT_PATH=/run/systemd/system PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ${SYSTEMD} --unit=boot.target --log-target=console'
`;
  const child = spawn('unshare', ['--pid', '--fork', '--mount', '--uts', '--ipc', '--mount-proc', 'sh', '-c', script], {
    stdio: ['ignore', 'ignore', 'pipe'], detached: true,
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  let exited = false;
  child.once('exit', () => { exited = true; });

  const run = (command: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<RunResult> =>
    new Promise((resolve) => {
      execFile('nsenter', ['-t', String(pid), '-m', '-p', '--', command, ...args], { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 1 << 24 },
        (err, stdout, errText) => {
          const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 99) : 0;
          resolve({ code, stdout, stderr: errText });
        });
    });
  const ok = async (command: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs?: number): Promise<string> => {
    const r = await run(command, args, env, timeoutMs);
    if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} (in the systemd container) exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  };

  // systemd is the grandchild of unshare: the only process in our new cgroup whose command is systemd.
  let pid = 0;
  const deadline = Date.now() + 30_000;
  for (; pid === 0 && Date.now() < deadline && !exited; await new Promise((r) => setTimeout(r, 100))) {
    const procs = await new Promise<string>((resolve) => execFile('sh', ['-c', `cat ${cgroup}/cgroup.procs ${cgroup}/*/cgroup.procs 2>/dev/null || true`], (_e, out) => resolve(out)));
    for (const p of procs.split('\n').filter(Boolean)) {
      const comm = await new Promise<string>((resolve) => execFile('cat', [`/proc/${p}/comm`], (_e, out) => resolve(out.trim())));
      if (comm === 'systemd') pid = Number(p);
    }
  }
  const stop = async (): Promise<void> => {
    // Loop devices are the host's: those on FUSE files mounted inside outlive the namespace unless detached.
    const fuseDevices = pid === 0 ? [] : fuseDevicesInside(pid);
    try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ }
    if (pid !== 0) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    for (let i = 0; i < 100 && !exited; i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 200));
    removeCgroup(cgroup);
    await detachLoopsOn(fuseDevices);
  };
  if (pid === 0) {
    await stop();
    throw new Error(`systemd did not boot in its container: ${stderr.trim().split('\n').slice(-5).join(' | ')}`);
  }
  for (let i = 0; i < 100; i++) {
    if ((await run('systemctl', ['is-system-running'], {}, 10_000)).stdout.trim() !== '') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { pid, run, ok, stop };
}
