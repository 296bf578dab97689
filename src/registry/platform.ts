/** Platforms (`os/arch[/variant]`) and choosing one manifest from an index. */
import { arch as hostArch, endianness } from 'node:os';
import { NotFoundError, UsageError } from '../util/errors.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export function parsePlatform(text: string): Platform {
  const parts = text.trim().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/i.test(p))) {
    throw new UsageError(`invalid platform "${text}": expected os/arch[/variant], e.g. linux/arm64`);
  }
  const p: Platform = { os: parts[0]!.toLowerCase(), architecture: normaliseArch(parts[1]!.toLowerCase()) };
  if (parts[2] !== undefined) p.variant = parts[2].toLowerCase();
  return p;
}

function normaliseArch(a: string): string {
  switch (a) {
    case 'x86_64':
    case 'x86-64':
      return 'amd64';
    case 'aarch64':
      return 'arm64';
    case 'i386':
    case 'i686':
      return '386';
    default:
      return a;
  }
}

/** The host's platform in OCI names (Node's `process.arch` → GOARCH-style). */
export function hostPlatform(): Platform {
  const a = hostArch();
  switch (a) {
    case 'x64':
      return { os: 'linux', architecture: 'amd64' };
    case 'arm64':
      return { os: 'linux', architecture: 'arm64', variant: 'v8' };
    case 'arm': {
      const v = (process.config.variables as { arm_version?: string }).arm_version;
      return { os: 'linux', architecture: 'arm', variant: `v${v ?? '7'}` };
    }
    case 'ia32':
      return { os: 'linux', architecture: '386' };
    case 'ppc64':
      return { os: 'linux', architecture: endianness() === 'LE' ? 'ppc64le' : 'ppc64' };
    case 'mips':
    case 'mipsel':
    case 'riscv64':
    case 's390x':
    case 'loong64':
      return { os: 'linux', architecture: a };
    default:
      return { os: 'linux', architecture: a };
  }
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** arm64's variant defaults to v8 and arm's to v7 when a manifest leaves it out. */
function effectiveVariant(p: Platform): string | undefined {
  if (p.variant !== undefined && p.variant !== '') return p.variant;
  if (p.architecture === 'arm64') return 'v8';
  if (p.architecture === 'arm') return 'v7';
  return undefined;
}

export interface IndexEntry {
  digest: string;
  platform?: Platform;
}

/**
 * The entry of an index that runs on `wanted`. An exact variant match wins; without a wanted
 * variant the default one (or none) is taken. Entries without a platform (attestations) are ignored.
 */
export function selectPlatform<E extends IndexEntry>(entries: E[], wanted: Platform, image: string): E {
  const candidates = entries.filter((e) => e.platform !== undefined && e.platform.os === wanted.os && e.platform.architecture === wanted.architecture);
  const want = effectiveVariant(wanted);
  const exact = candidates.find((e) => effectiveVariant(e.platform!) === want);
  if (exact !== undefined) return exact;
  if (wanted.variant === undefined && candidates.length > 0) return candidates[0]!;
  const available = entries
    .filter((e) => e.platform !== undefined && e.platform.os !== 'unknown')
    .map((e) => formatPlatform(e.platform!))
    .join(', ');
  throw new NotFoundError(`image ${image} has no manifest for platform ${formatPlatform(wanted)} (available: ${available || 'none'})`, { image });
}
