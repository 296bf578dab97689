/** The terminal table of `ondemand bench`: one block per workload, a row per phase, a column per mode. */
import { PHASES, WORKLOAD_TITLES, type BenchCell, type BenchReport } from './types.js';

const MiB = 1024 * 1024;

export function formatValue(v: number, unit: string): string {
  if (unit === 's') return v < 10 ? v.toFixed(3) : v.toFixed(1);
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

function cellText(c: BenchCell | undefined): string {
  if (!c?.median) return '-';
  const v = formatValue(c.median.value, c.unit);
  return c.vsLocal === null ? v : `${v} ${c.vsLocal.toFixed(2)}x`;
}

export function renderText(r: BenchReport): string {
  const out: string[] = [];
  const modes = r.modes.map((m) => m.mode);
  out.push(`ondemand bench: ${r.image.ref} (${formatBytes(r.image.storedBytes)} stored, ${formatBytes(r.image.uncompressedBytes)} uncompressed, ${r.image.files} files, ${r.image.directories} dirs)`);
  out.push(`host: Linux ${r.host.kernel}, ${r.host.cpus} CPUs, ${formatBytes(r.host.memoryBytes)}; detect: ${r.host.detect.mode ?? 'none'}; ${r.options.runs} run(s), medians; "x": speed relative to local (local's time / the mode's)`);
  const width = Math.max(18, ...modes.map((m) => m.length + 2));
  for (const w of r.options.workloads) {
    const unit = r.results.find((c) => c.workload === w)?.unit ?? '';
    out.push('');
    out.push(`${WORKLOAD_TITLES[w]} [${unit}${unit === 's' ? ', less is better' : ''}]`);
    out.push(`${'phase'.padEnd(6)}${modes.map((m) => m.padStart(width)).join('')}`);
    for (const p of PHASES) {
      const row = modes.map((m) => cellText(r.results.find((c) => c.workload === w && c.phase === p && c.mode === m)).padStart(width));
      out.push(`${p.padEnd(6)}${row.join('')}`);
    }
    const extra: string[] = [];
    for (const m of modes) {
      const cold = r.results.find((c) => c.workload === w && c.phase === 'cold' && c.mode === m)?.median;
      const warm = r.results.find((c) => c.workload === w && c.phase === 'warm' && c.mode === m)?.median;
      if (!cold) continue;
      const lat = cold.p50Us !== null ? `, p50/p99 cold ${cold.p50Us.toFixed(0)}/${(cold.p99Us ?? 0).toFixed(0)} us, warm ${warm?.p50Us?.toFixed(0) ?? '-'}/${warm?.p99Us?.toFixed(0) ?? '-'} us` : '';
      const fetched = m === 'local' ? '' : `, cold fetched ${formatBytes(cold.fetchedBytes)} in ${cold.fetchedRequests} requests, daemon CPU ${cold.daemonCpuMs.toFixed(0)} ms`;
      extra.push(`  ${m}: mount ${cold.mountMs?.toFixed(0) ?? '-'} ms cold, ${warm?.mountMs?.toFixed(0) ?? '-'} ms warm${fetched}${lat}`);
    }
    out.push(...extra);
  }
  if (r.comparePull) {
    const cp = r.comparePull;
    out.push('');
    out.push(`start-up against the full pull of ${cp.source} (skopeo copy + umoci unpack + run)`);
    if (cp.median) out.push(`  full pull: ${(cp.median.totalMs / 1000).toFixed(3)} s (copy ${(cp.median.copyMs / 1000).toFixed(3)}, unpack ${(cp.median.unpackMs / 1000).toFixed(3)}, run ${(cp.median.runMs / 1000).toFixed(3)})`);
    if (cp.error) out.push(`  full pull FAILED: ${cp.error}`);
    for (const m of cp.modes) {
      if (m.lazyMs === null) continue;
      const frac = m.fetchedFraction === null ? '' : `, fetched ${formatBytes(m.fetchedBytes ?? 0)} = ${(m.fetchedFraction * 100).toFixed(1)} % of the image`;
      out.push(`  ${m.mode}: cold mount + run ${(m.lazyMs / 1000).toFixed(3)} s = ${m.ratio === null ? '-' : `${m.ratio.toFixed(2)}x`} the pull's time${frac}`);
    }
  }
  const failed = r.modes.filter((m) => m.status === 'failed');
  if (failed.length > 0) {
    out.push('');
    for (const f of failed) out.push(`FAILED ${f.mode}${f.failedAt ? ` (${f.failedAt.workload}, ${f.failedAt.phase}, run ${f.failedAt.run})` : ''}: ${f.error ?? ''}`);
  }
  if (r.leftoverMounts.length > 0) out.push(`mounts left behind and detached: ${r.leftoverMounts.join(', ')}`);
  return `${out.join('\n')}\n`;
}
