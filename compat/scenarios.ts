/**
 * Compat scenarios: one shell file each in compat/scenarios/, run as the workload of a VM. Adding a
 * scenario is adding a file. Header comments declare how to run it:
 *   # kernel: [5.10 | 6.1 | 6.12] [ondemand | no-ondemand]   (version default 6.1, variant default the
 *                                                       version's own: `ondemand` is 6.1 ondemand,
 *                                                       `5.10` is 5.10 no-ondemand)
 *   # mode: fscache | fuse-blobs | auto | detect ...   (the table column)
 *   # timeout: <seconds>
 *   # proves: <what passing shows>
 *   # memory: <MiB>                                      (guest RAM, default 2048)
 *   # needs: debian-minbase                              (host-side inputs; see scenarioEnv)
 * The scenario passes when it exits 0 (lib.sh's `fail` exits 1 with a reason on stderr).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { KERNEL_VERSIONS, defaultVariant, repoRoot, runInVm, type KernelSpec, type KernelVersion, type VmResult } from './vm.js';

export interface Scenario {
  name: string;
  file: string;
  kernel: KernelSpec;
  mode: string;
  timeoutMs: number;
  proves: string;
  memMiB: number;
  /** Host-side inputs the caller provides as environment variables (see scenarioEnv). */
  needs: string[];
}

/** The Debian minbase rootfs tarball (made by test/helpers/trees.ts on the first `make test`). */
export const DEBIAN_MINBASE_TAR = process.env.ONDEMAND_DEBIAN_TAR ?? '/var/tmp/ondemand-cache/debian-bookworm-minbase.tar';

/** Environment for a scenario's needs; the guest sees the host's / read-only, so paths are passed as is. */
export function scenarioEnv(s: Scenario): Record<string, string> {
  const env: Record<string, string> = {};
  if (s.needs.includes('debian-minbase')) env.MINBASE_TAR = DEBIAN_MINBASE_TAR;
  return env;
}

export function loadScenarios(filter?: string): Scenario[] {
  const dir = join(repoRoot(), 'compat', 'scenarios');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.sh'))
    .sort()
    .map((f) => parseScenario(join(dir, f)))
    .filter((s) => filter === undefined || s.name.includes(filter));
}

function parseScenario(file: string): Scenario {
  const text = readFileSync(file, 'utf8');
  const header = (key: string): string | undefined => new RegExp(`^# ${key}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const kernel = parseKernel(file, header('kernel') ?? 'ondemand');
  const proves = /^# proves:([\s\S]*?)^[^#]/m.exec(text)?.[1]?.replace(/\n#\s*/g, ' ').trim() ?? '';
  return {
    name: file.split('/').pop()!.replace(/\.sh$/, ''),
    file,
    kernel,
    mode: header('mode') ?? '-',
    timeoutMs: Number(header('timeout') ?? 180) * 1000,
    proves,
    memMiB: Number(header('memory') ?? 2048),
    needs: parseNeeds(file, header('needs')),
  };
}

/** `# kernel:` — `[version] [variant]`, e.g. `6.12 ondemand`, `5.10`, `no-ondemand` (= 6.1 no-ondemand). */
export function parseKernel(file: string, text: string): KernelSpec {
  const words = text.split(/\s+/).filter((w) => w !== '');
  const isVersion = (w: string | undefined): w is KernelVersion => (KERNEL_VERSIONS as readonly string[]).includes(w ?? '');
  const version: KernelVersion = isVersion(words[0]) ? words[0] : '6.1';
  const rest = isVersion(words[0]) ? words.slice(1) : words;
  const variant = rest[0] ?? defaultVariant(version);
  if (rest.length > 1 || (variant !== 'ondemand' && variant !== 'no-ondemand')) {
    throw new Error(`${file}: '# kernel: ${text}' must be [${KERNEL_VERSIONS.join('|')}] [ondemand|no-ondemand]`);
  }
  if (variant === 'ondemand' && version === '5.10') throw new Error(`${file}: linux 5.10 has no on-demand options (5.19+)`);
  return { version, variant };
}

const KNOWN_NEEDS = ['debian-minbase'];

function parseNeeds(file: string, text: string | undefined): string[] {
  const list = (text ?? '').split(/[\s,]+/).filter((n) => n !== '');
  const unknown = list.filter((n) => !KNOWN_NEEDS.includes(n));
  if (unknown.length > 0) throw new Error(`${file}: unknown need(s) ${unknown.join(', ')} (known: ${KNOWN_NEEDS.join(', ')})`);
  return list;
}

/**
 * Shard `index` of `count`: scenarios dealt out by their timeout (longest first, each to the lightest
 * shard), so shards run side by side in about the same time. Deterministic: every shard file sees the
 * same split.
 */
export function scenarioShard(scenarios: readonly Scenario[], index: number, count: number): Scenario[] {
  const load = new Array<number>(count).fill(0);
  const shards = Array.from({ length: count }, (): Scenario[] => []);
  for (const s of [...scenarios].sort((a, b) => b.timeoutMs - a.timeoutMs || a.name.localeCompare(b.name))) {
    const lightest = load.indexOf(Math.min(...load));
    load[lightest] = (load[lightest] ?? 0) + s.timeoutMs;
    shards[lightest]!.push(s);
  }
  return (shards[index] ?? []).sort((a, b) => a.name.localeCompare(b.name));
}

export function runScenario(s: Scenario): Promise<VmResult> {
  return runInVm({ kernel: s.kernel, script: readFileSync(s.file, 'utf8'), timeoutMs: s.timeoutMs, memMiB: s.memMiB, env: scenarioEnv(s) });
}
