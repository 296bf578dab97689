/**
 * Runs one shell script as the workload of a throw-away QEMU VM booted from our compat kernel.
 * The guest sees the host's / read-only over 9p (so node, the repo's dist/ and node_modules are at the
 * same paths) and a writable per-run share at /run/shared, where results come back. /tmp in the guest is
 * a fresh tmpfs, so the repo must not live under /tmp.
 *
 * Acceleration: TCG by default (KVM faults on the development VMs, see spec/compat-vm.md). Set
 * COMPAT_ACCEL=kvm on a host with working KVM; there is no automatic probe.
 */
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export type KernelVariant = 'ondemand' | 'no-ondemand';

export interface VmRunOptions {
  kernel: KernelVariant;
  /** Shell (busybox-compatible /bin/sh) run as root in the guest, cwd /run/shared. */
  script: string;
  /** Extra files for the share (relative path → content). */
  files?: Record<string, string | Buffer>;
  timeoutMs?: number;
  memMiB?: number;
  env?: Record<string, string>;
}

export interface VmResult {
  rc: number;
  stdout: string;
  stderr: string;
  serial: string;
  dmesg: string;
  durationMs: number;
  /** Files the scenario wrote into /run/shared/out/ (name → content). */
  out: Record<string, string>;
}

const execFileAsync = promisify(execFile);

/** The repository root (works from compat/*.ts under vitest and from dist/compat/*.js). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'compat', 'guest', 'init'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('compat: cannot find the repository root from ' + fileURLToPath(import.meta.url));
}

function assertGuestVisible(root: string): void {
  if (root === '/tmp' || root.startsWith('/tmp/')) {
    throw new Error(`compat: the repository is under /tmp (${root}); the guest mounts a tmpfs over /tmp and cannot see it. Clone it elsewhere.`);
  }
}

/** Path of the cached kernel, or undefined when it has not been built. */
export async function cachedKernel(variant: KernelVariant): Promise<string | undefined> {
  const script = join(repoRoot(), 'compat', 'kernel', 'build.sh');
  try {
    const { stdout } = await execFileAsync('bash', [script, '--print-path', variant]);
    return stdout.trim().split('\n').pop();
  } catch {
    return undefined;
  }
}

/** Builds the kernel unless cached (about 5 min on 2 cores); returns its path. Logs go to `log`. */
export async function ensureKernel(variant: KernelVariant, log: (line: string) => void = () => undefined): Promise<string> {
  const cached = await cachedKernel(variant);
  if (cached !== undefined) return cached;
  const script = join(repoRoot(), 'compat', 'kernel', 'build.sh');
  return new Promise<string>((resolvePath, reject) => {
    const child = spawn('bash', [script, variant], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let errTail = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      const text = d.toString();
      errTail = (errTail + text).slice(-4000);
      for (const line of text.split('\n')) if (line.startsWith('build.sh:')) log(line);
    });
    child.on('close', (code) => {
      if (code === 0) resolvePath(out.trim().split('\n').pop() ?? '');
      else reject(new Error(`compat kernel build (${variant}) failed with ${code}:\n${errTail}`));
    });
  });
}

export function qemuArgs(kernel: string, share: string, memMiB: number): string[] {
  const accel = process.env.COMPAT_ACCEL === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host,-arch-capabilities'] : ['-accel', 'tcg,thread=multi,tb-size=256', '-cpu', 'max'];
  const init = join(repoRoot(), 'compat', 'guest', 'init');
  return [
    ...accel, '-smp', '1', '-m', String(memMiB),
    '-nodefaults', '-no-reboot', '-nographic', '-serial', 'stdio', '-no-user-config',
    '-kernel', kernel,
    '-append', `console=ttyS0 quiet root=root rootfstype=9p rootflags=trans=virtio,version=9p2000.L,msize=512000,cache=loose ro init=${init} panic=-1`,
    '-fsdev', 'local,id=r,path=/,security_model=none,readonly=on,multidevs=remap', '-device', 'virtio-9p-pci,fsdev=r,mount_tag=root',
    '-fsdev', `local,id=s,path=${share},security_model=none`, '-device', 'virtio-9p-pci,fsdev=s,mount_tag=shared',
    '-device', 'virtio-rng-pci',
  ];
}

/** Boots the VM, runs the script, returns what it left in the share. Throws (with the serial log) on timeout. */
export async function runInVm(opts: VmRunOptions): Promise<VmResult> {
  const root = repoRoot();
  assertGuestVisible(root);
  const kernel = await cachedKernel(opts.kernel);
  if (kernel === undefined) throw new Error(`compat: the ${opts.kernel} kernel is not built (run compat/kernel/build.sh ${opts.kernel})`);
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const share = mkdtempSync(join(process.env.COMPAT_SHARE_PARENT ?? '/var/tmp', 'ondemand-compat-'));
  const started = Date.now();
  try {
    mkdirSync(join(share, 'out'));
    for (const [name, content] of Object.entries(opts.files ?? {})) {
      mkdirSync(dirname(join(share, name)), { recursive: true });
      writeFileSync(join(share, name), content);
    }
    const env: Record<string, string> = { REPO: root, NODE: process.execPath, DIST: join(root, 'dist'), KERNEL_VARIANT: opts.kernel, ...opts.env };
    const prelude = Object.entries(env).map(([k, v]) => `export ${k}='${v.replace(/'/g, `'\\''`)}'`).join('\n');
    writeFileSync(join(share, 'run.sh'), `${prelude}\n. "$REPO/compat/guest/lib.sh"\n${opts.script}\n`);
    writeFileSync(join(share, 'timeout'), String(Math.max(10, Math.floor(timeoutMs / 1000) - 10)));
    const serial = await bootAndWait(kernel, share, opts.memMiB ?? 2048, timeoutMs);
    const read = (name: string): string => (existsSync(join(share, name)) ? readFileSync(join(share, name), 'utf8') : '');
    const rcText = read('rc').trim();
    if (rcText === '') throw new Error(`compat: the guest wrote no rc (boot or init failure). Serial log:\n${serial.slice(-6000)}`);
    const out: Record<string, string> = {};
    for (const name of readdirSafe(join(share, 'out'))) out[name] = read(join('out', name));
    return { rc: Number(rcText), stdout: read('stdout'), stderr: read('stderr'), serial, dmesg: read('dmesg'), durationMs: Date.now() - started, out };
  } finally {
    if (process.env.COMPAT_KEEP !== '1') rmSync(share, { recursive: true, force: true });
    else process.stderr.write(`compat: kept share ${share}\n`);
  }
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function bootAndWait(kernel: string, share: string, memMiB: number, timeoutMs: number): Promise<string> {
  return new Promise<string>((resolveSerial, reject) => {
    const child = spawn('qemu-system-x86_64', qemuArgs(kernel, share, memMiB), { stdio: ['ignore', 'pipe', 'pipe'] });
    let serial = '';
    const keep = (d: Buffer): void => {
      serial += d.toString();
      if (serial.length > 2_000_000) serial = serial.slice(-1_000_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`compat: VM timed out after ${timeoutMs} ms; serial log tail:\n${serial.slice(-6000)}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`compat: cannot start qemu-system-x86_64: ${err.message}`));
    });
    child.on('close', () => {
      clearTimeout(timer);
      resolveSerial(serial);
    });
  });
}

