/**
 * The HTML report of `ondemand bench --report FILE.html`: one self-contained page (inline CSS and SVG,
 * no script, no font, image or style from anywhere else) with the host's facts, the image, each mode's
 * outcome, an SVG bar chart per workload (phases grouped, a bar per mode, its figure and its ratio to
 * local written on it) and the table of every figure.
 */
import { formatBytes, formatValue } from './report-text.js';
import { PHASES, WORKLOAD_TITLES, type BenchCell, type BenchReport, type Workload } from './types.js';

/** A colour per mode (the same in every chart); modes beyond these cycle through them. */
export const MODE_COLOURS: Record<string, string> = {
  local: '#4c78a8',
  fanotify: '#f58518',
  'fuse-blobs': '#54a24b',
  'fuse-tree': '#b279a2',
  fscache: '#e45756',
};
const SPARE_COLOURS = ['#72b7b2', '#eeca3b', '#9d755d'];

export function modeColour(mode: string, index: number): string {
  return MODE_COLOURS[mode] ?? SPARE_COLOURS[index % SPARE_COLOURS.length]!;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Chart geometry (px): three panels side by side, one per phase, each with its own value axis. */
const W = 900;
const H = 280;
const PANEL_W = W / 3;
const PAD = { left: 58, right: 10, top: 28, bottom: 46 };

/** A round upper bound for the value axis. */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function panel(phase: (typeof PHASES)[number], x0: number, cells: BenchCell[], modes: string[], unit: string): string {
  const mine = cells.filter((c) => c.phase === phase);
  const max = niceMax(Math.max(0, ...mine.map((c) => c.median?.value ?? 0)));
  const left = x0 + PAD.left;
  const plotW = PANEL_W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const barW = Math.min(60, plotW / Math.max(1, modes.length));
  const gx = left + (plotW - barW * modes.length) / 2;
  const parts: string[] = [];
  parts.push(`<rect class="plot" x="${left}" y="${PAD.top}" width="${plotW}" height="${plotH}" fill="#fafafa" stroke="#ccc"/>`);
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    const y = PAD.top + plotH - (plotH * i) / 4;
    parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${left - 5}" y="${y + 4}" text-anchor="end" class="axis">${esc(formatValue(v, unit))}</text>`);
  }
  parts.push(`<text x="${left + plotW / 2}" y="${PAD.top - 10}" text-anchor="middle" class="phase">${phase}</text>`);
  modes.forEach((mode, i) => {
    const c = mine.find((x) => x.mode === mode);
    const x = gx + i * barW;
    parts.push(`<text x="${x + barW / 2}" y="${H - PAD.bottom + 14}" text-anchor="middle" class="mode">${esc(mode)}</text>`);
    if (!c?.median) {
      parts.push(`<text x="${x + barW / 2}" y="${PAD.top + plotH - 4}" text-anchor="middle" class="none">-</text>`);
      return;
    }
    const h = Math.max(1, (plotH * c.median.value) / max);
    const y = PAD.top + plotH - h;
    parts.push(`<rect class="bar" data-mode="${esc(mode)}" data-phase="${phase}" data-value="${c.median.value}" x="${x + 3}" y="${y}" width="${barW - 6}" height="${h}" fill="${modeColour(mode, i)}"><title>${esc(`${mode} ${phase}: ${formatValue(c.median.value, c.unit)} ${c.unit}${c.vsLocal !== null ? `, ${c.vsLocal.toFixed(2)}x local` : ''}`)}</title></rect>`);
    parts.push(`<text x="${x + barW / 2}" y="${Math.max(PAD.top + 10, y - 4)}" text-anchor="middle" class="val">${esc(formatValue(c.median.value, c.unit))}</text>`);
    if (c.vsLocal !== null) parts.push(`<text x="${x + barW / 2}" y="${H - PAD.bottom + 30}" text-anchor="middle" class="ratio">${c.vsLocal.toFixed(2)}x</text>`);
  });
  return parts.join('');
}

function chart(workload: Workload, cells: BenchCell[], modes: string[]): string {
  const unit = cells[0]?.unit ?? '';
  const panels = PHASES.map((phase, i) => panel(phase, i * PANEL_W, cells, modes, unit));
  const label = `<text x="12" y="${H / 2}" transform="rotate(-90 12 ${H / 2})" text-anchor="middle" class="axis">${esc(unit)}${unit === 's' ? ' (less is better)' : ''}</text>`;
  return `<svg class="chart" data-workload="${workload}" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(WORKLOAD_TITLES[workload])}">${label}${panels.join('')}</svg>`;
}

function legend(modes: string[]): string {
  return `<p class="legend">${modes.map((m, i) => `<span><i style="background:${modeColour(m, i)}"></i>${esc(m)}</span>`).join(' ')}</p>`;
}

function table(cells: BenchCell[]): string {
  const rows = cells.filter((c) => c.median).map((c) => {
    const m = c.median!;
    return `<tr><td>${esc(c.mode)}</td><td>${c.phase}</td><td class="n">${esc(formatValue(m.value, c.unit))} ${esc(c.unit)}</td><td class="n">${c.vsLocal === null ? '' : `${c.vsLocal.toFixed(2)}x`}</td>`
      + `<td class="n">${m.wallMs.toFixed(1)}</td><td class="n">${m.p50Us === null ? '' : m.p50Us.toFixed(1)}</td><td class="n">${m.p99Us === null ? '' : m.p99Us.toFixed(1)}</td>`
      + `<td class="n">${m.mountMs === null ? '' : m.mountMs.toFixed(0)}</td><td class="n">${c.mode === 'local' ? '' : esc(formatBytes(m.fetchedBytes))}</td><td class="n">${c.mode === 'local' ? '' : m.fetchedRequests}</td><td class="n">${c.mode === 'local' ? '' : m.daemonCpuMs.toFixed(0)}</td><td class="n">${c.samples.length}</td></tr>`;
  });
  return `<table><thead><tr><th>mode</th><th>phase</th><th>figure</th><th>vs local</th><th>wall ms</th><th>p50 µs</th><th>p99 µs</th><th>mount ms</th><th>fetched</th><th>requests</th><th>daemon CPU ms</th><th>runs</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

export function renderHtml(r: BenchReport): string {
  const modes = r.modes.map((m) => m.mode);
  const facts: [string, string][] = [
    ['image', `${r.image.ref} (${r.image.manifestDigest.slice(0, 19)}…)`],
    ['image size', `${formatBytes(r.image.storedBytes)} stored, ${formatBytes(r.image.uncompressedBytes)} uncompressed in ${r.image.blobs} blob(s), bootstrap ${formatBytes(r.image.bootstrapBytes)}; ${r.image.files} files (${formatBytes(r.image.fileBytes)}), ${r.image.directories} directories`],
    ['largest files (seq, rand)', `${r.image.largestFiles.length} files, ${formatBytes(r.image.largestBytes)}`],
    ['kernel', `Linux ${r.host.kernel} on ${r.host.hostname}: ${r.host.cpus} CPUs, ${formatBytes(r.host.memoryBytes)}`],
    ['detect', `${r.host.detect.mode ?? 'none'}: ${r.host.detect.reason}`],
    ['features', Object.entries(r.host.detect.features).map(([k, v]) => `${k} ${v.supported ? 'yes' : 'no'}`).join(', ')],
    ['runs', `${r.options.runs} (modes interleaved, medians shown); rand: ${r.options.randReads} reads${r.options.run ? `; start-up: ${r.options.run.command}${r.options.run.ready ? ` until /${r.options.run.ready}/` : ''}` : ''}`],
    ['when', `${r.startedAt} – ${r.finishedAt}; ondemand ${r.host.ondemand}, Node ${r.host.node}`],
  ];
  const outcomes = r.modes.map((m) => `<li class="${m.status}"><b>${esc(m.mode)}</b>: ${m.status === 'ok' ? 'completed' : `FAILED${m.failedAt ? ` (${m.failedAt.workload}, ${m.failedAt.phase}, run ${m.failedAt.run})` : ''}: ${esc(m.error ?? '')}`}</li>`);
  const sections = r.options.workloads.map((w) => {
    const cells = r.results.filter((c) => c.workload === w);
    return `<section><h2>${esc(WORKLOAD_TITLES[w])}</h2>${chart(w, cells, modes)}${table(cells)}</section>`;
  });
  let pull = '';
  if (r.comparePull) {
    const cp = r.comparePull;
    const rows = cp.modes.filter((m) => m.lazyMs !== null).map((m) => `<tr><td>${esc(m.mode)}</td><td class="n">${((m.lazyMs ?? 0) / 1000).toFixed(3)}</td><td class="n">${m.ratio === null ? '' : `${m.ratio.toFixed(2)}x`}</td><td class="n">${m.fetchedBytes === null ? '' : esc(formatBytes(m.fetchedBytes))}</td><td class="n">${m.fetchedFraction === null ? '' : `${(m.fetchedFraction * 100).toFixed(1)} %`}</td></tr>`);
    pull = `<section><h2>start-up against the full pull</h2><p>${esc(cp.source)}: skopeo copy + umoci unpack + the same command${cp.median ? `: ${(cp.median.totalMs / 1000).toFixed(3)} s (copy ${(cp.median.copyMs / 1000).toFixed(3)}, unpack ${(cp.median.unpackMs / 1000).toFixed(3)}, run ${(cp.median.runMs / 1000).toFixed(3)})` : ''}${cp.error ? ` — FAILED: ${esc(cp.error)}` : ''}</p>`
      + `<table><thead><tr><th>mode</th><th>cold mount + run s</th><th>of the pull's time</th><th>fetched</th><th>of the image</th></tr></thead><tbody>${rows.join('')}</tbody></table></section>`;
  }
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>ondemand bench: ${esc(r.image.ref)}</title>
<style>
body{font:14px/1.4 sans-serif;margin:24px;color:#222;background:#fff;max-width:1100px}
h1{font-size:20px}h2{font-size:16px;margin:28px 0 6px}
table{border-collapse:collapse;margin:8px 0;font-size:12px}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}td.n{text-align:right}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:bold}dd{margin:0}
.legend span{margin-right:14px}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
li.failed{color:#b00}svg text{font:11px sans-serif;fill:#333}svg text.phase{font-size:13px;font-weight:bold}svg text.ratio{fill:#555}svg text.mode{font-size:10px;fill:#666}
</style></head><body>
<h1>ondemand bench: ${esc(r.image.ref)}</h1>
<dl>${facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>
<h2>modes</h2><ul>${outcomes.join('')}</ul>
<p>cold: a new mount over an empty cache; warm: a new mount over the complete cache, page cache dropped; hot: the warm mount again. Bars: medians, each phase on its own scale; under each bar its speed relative to local in that phase (local's time / the mode's).</p>
${legend(modes)}
${sections.join('\n')}
${pull}
${r.leftoverMounts.length > 0 ? `<p class="failed">mounts left behind and detached: ${esc(r.leftoverMounts.join(', '))}</p>` : ''}
</body></html>
`;
}
