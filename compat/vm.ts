/**
 * Runs one shell script as the workload of a throw-away QEMU VM booted from one of our compat kernels
 * (Debian's linux-source-5.10, -6.1 or -6.12 built by compat/kernel/build.sh).
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
/** The Debian kernel source packages the matrix is built from (linux-source-<version>). */
export const KERNEL_VERSIONS = ['5.10', '6.1', '6.12'] as const;
export type KernelVersion = (typeof KERNEL_VERSIONS)[number];

/** One kernel of the matrix: a source version and its variant (with or without the on-demand options). */
export interface KernelSpec {
  version: KernelVersion;
  variant: KernelVariant;
}

/** The on-demand options (CACHEFILES_ONDEMAND, EROFS_FS_ONDEMAND) came in 5.19: 5.10 has only the no-ondemand variant. */
export function defaultVariant(version: KernelVersion): KernelVariant {
  return version === '5.10' ? 'no-ondemand' : 'ondemand';
}

/** `6.1`, `6.1-no-ondemand`, `5.10`, `6.12`: the version, and the variant when it is not the version's own. */
export function kernelName(k: KernelSpec): string {
  return k.variant === defaultVariant(k.version) ? k.version : `${k.version}-${k.variant}`;
}

/** The table's kernel column: the release the guest ran (`uname -r`, e.g. 6.1.192) and the variant as in kernelName. */
export function kernelLabel(k: KernelSpec, release: string): string {
  return k.variant === defaultVariant(k.version) ? release : `${release}-${k.variant}`;
}

/** build.sh's arguments for this kernel. */
function buildArgs(k: KernelSpec): string[] {
  return [k.version, k.variant];
}

export interface VmRunOptions {
  kernel: KernelSpec;
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
  /** The guest's `uname -r`. */
  release: string;
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

/**
 * Throws when the guest could not see the repository (under /tmp, where the guest mounts a tmpfs).
 * Called before anything is built: a kernel build can take an hour on a fresh machine.
 */
export function assertGuestVisible(root: string = repoRoot()): void {
  if (root === '/tmp' || root.startsWith('/tmp/')) {
    throw new Error(`compat: the repository is under /tmp (${root}); the guest mounts a tmpfs over /tmp and cannot see it. Clone it elsewhere.`);
  }
}

/** Path of the cached kernel, or undefined when it has not been built. */
export async function cachedKernel(k: KernelSpec): Promise<string | undefined> {
  const script = join(repoRoot(), 'compat', 'kernel', 'build.sh');
  try {
    const { stdout } = await execFileAsync('bash', [script, '--print-path', ...buildArgs(k)]);
    return stdout.trim().split('\n').pop();
  } catch {
    return undefined;
  }
}

/**
 * The release of a kernel (e.g. 6.12.118): recorded next to a vmlinux that build.sh built, else the
 * installed source package's version (build.sh --release).
 */
export async function kernelRelease(k: KernelSpec): Promise<string> {
  const path = await cachedKernel(k);
  if (path !== undefined && existsSync(join(dirname(path), 'release'))) return readFileSync(join(dirname(path), 'release'), 'utf8').trim();
  try {
    const { stdout } = await execFileAsync('bash', [join(repoRoot(), 'compat', 'kernel', 'build.sh'), '--release', k.version]);
    return stdout.trim();
  } catch {
    return k.version;
  }
}

/**
 * Builds the kernel unless cached; returns its path. Logs go to `log`. A full build takes minutes on
 * an idle 2-core machine and up to an hour on a loaded one (compat/README.md has the measurements).
 */
export async function ensureKernel(k: KernelSpec, log: (line: string) => void = () => undefined): Promise<string> {
  assertGuestVisible();
  const cached = await cachedKernel(k);
  if (cached !== undefined) return cached;
  const script = join(repoRoot(), 'compat', 'kernel', 'build.sh');
  return new Promise<string>((resolvePath, reject) => {
    const child = spawn('bash', [script, ...buildArgs(k)], { stdio: ['ignore', 'pipe', 'pipe'] });
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
      else reject(new Error(`compat kernel build (${buildArgs(k).join(' ')}) failed with ${code}:\n${errTail}`));
    });
  });
}

/**
 * How the guest finds its 9p root. 6.1 and later mount a non-block root by its name (mount_nodev_root:
 * `root=root` is the 9p tag). 5.10 only knows block roots: it mounts "/dev/root" with each
 * `rootfstype`, and 9p takes that device name as its tag, so the tag is `/dev/root`.
 */
function rootDevice(version: KernelVersion): { tag: string; arg: string } {
  return version === '5.10' ? { tag: '/dev/root', arg: 'root=/dev/root' } : { tag: 'root', arg: 'root=root' };
}

export function qemuArgs(kernel: string, share: string, memMiB: number, version: KernelVersion): string[] {
  const root = rootDevice(version);
  const accel = process.env.COMPAT_ACCEL === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host,-arch-capabilities'] : ['-accel', 'tcg,thread=multi,tb-size=256', '-cpu', 'max'];
  const init = join(repoRoot(), 'compat', 'guest', 'init');
  return [
    ...accel, '-smp', '1', '-m', String(memMiB),
    '-nodefaults', '-no-reboot', '-nographic', '-serial', 'stdio', '-no-user-config',
    '-kernel', kernel,
    '-append', `console=ttyS0 quiet ${root.arg} rootfstype=9p rootflags=trans=virtio,version=9p2000.L,msize=512000,cache=loose ro init=${init} panic=-1`,
    '-fsdev', 'local,id=r,path=/,security_model=none,readonly=on,multidevs=remap', '-device', `virtio-9p-pci,fsdev=r,mount_tag=${root.tag}`,
    '-fsdev', `local,id=s,path=${share},security_model=none`, '-device', 'virtio-9p-pci,fsdev=s,mount_tag=shared',
    '-device', 'virtio-rng-pci',
  ];
}

/** Boots the VM, runs the script, returns what it left in the share. Throws (with the serial log) on timeout. */
export async function runInVm(opts: VmRunOptions): Promise<VmResult> {
  const root = repoRoot();
  assertGuestVisible(root);
  const kernel = await cachedKernel(opts.kernel);
  if (kernel === undefined) throw new Error(`compat: the ${kernelName(opts.kernel)} kernel is not built (run compat/kernel/build.sh ${buildArgs(opts.kernel).join(' ')})`);
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const share = mkdtempSync(join(process.env.COMPAT_SHARE_PARENT ?? '/var/tmp', 'ondemand-compat-'));
  const started = Date.now();
  try {
    mkdirSync(join(share, 'out'));
    for (const [name, content] of Object.entries(opts.files ?? {})) {
      mkdirSync(dirname(join(share, name)), { recursive: true });
      writeFileSync(join(share, name), content);
    }
    const env: Record<string, string> = { REPO: root, NODE: process.execPath, DIST: join(root, 'dist'), KERNEL_VERSION: opts.kernel.version, KERNEL_VARIANT: opts.kernel.variant, ...opts.env };
    const prelude = Object.entries(env).map(([k, v]) => `export ${k}='${v.replace(/'/g, `'\\''`)}'`).join('\n');
    writeFileSync(join(share, 'run.sh'), `${prelude}\n. "$REPO/compat/guest/lib.sh"\n${opts.script}\n`);
    writeFileSync(join(share, 'timeout'), String(Math.max(10, Math.floor(timeoutMs / 1000) - 10)));
    const serial = await bootAndWait(qemuArgs(kernel, share, opts.memMiB ?? 2048, opts.kernel.version), timeoutMs);
    const read = (name: string): string => (existsSync(join(share, name)) ? readFileSync(join(share, name), 'utf8') : '');
    const rcText = read('rc').trim();
    if (rcText === '') throw new Error(`compat: the guest wrote no rc (boot or init failure). Serial log:\n${serial.slice(-6000)}`);
    const out: Record<string, string> = {};
    for (const name of readdirSafe(join(share, 'out'))) out[name] = read(join('out', name));
    const release = read('kernel-release').trim();
    return { rc: Number(rcText), stdout: read('stdout'), stderr: read('stderr'), serial, dmesg: read('dmesg'), durationMs: Date.now() - started, release, out };
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

function bootAndWait(args: string[], timeoutMs: number): Promise<string> {
  return new Promise<string>((resolveSerial, reject) => {
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
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

