/**
 * Rendering an HTML file in Debian's headless Chromium with no network at all (a network namespace of
 * its own: only a down loopback), a new empty profile each time: a screenshot (PNG, decoded by pngjs)
 * and the DOM after rendering.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { PNG } from 'pngjs';

const exec = promisify(execFile);
export const CHROMIUM = '/usr/bin/chromium';

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
  '--hide-scrollbars', '--force-device-scale-factor=1'];

async function chromium(args: string[]): Promise<string> {
  const profile = mkdtempSync('/var/tmp/ondemand-chromium-');
  try {
    const { stdout } = await exec('unshare', ['--net', CHROMIUM, ...FLAGS, `--user-data-dir=${profile}`, ...args], { maxBuffer: 64 << 20, timeout: 120_000 });
    return stdout;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

export interface Rendered {
  png: PNG;
  dom: string;
}

export async function render(htmlFile: string, width: number, height: number, dir: string): Promise<Rendered> {
  const shot = join(dir, 'shot.png');
  const url = pathToFileURL(htmlFile).href;
  await chromium([`--window-size=${width},${height}`, `--screenshot=${shot}`, url]);
  const dom = await chromium(['--dump-dom', url]);
  return { png: PNG.sync.read(readFileSync(shot)), dom };
}

/** Pixels of `png` within `tolerance` (per channel) of the colour `#rrggbb`. */
export function countColour(png: PNG, hex: string, tolerance = 6): number {
  const r = parseInt(hex.slice(1, 3), 16);
  const g = parseInt(hex.slice(3, 5), 16);
  const b = parseInt(hex.slice(5, 7), 16);
  let n = 0;
  for (let i = 0; i < png.data.length; i += 4) {
    if (Math.abs(png.data[i]! - r) <= tolerance && Math.abs(png.data[i + 1]! - g) <= tolerance && Math.abs(png.data[i + 2]! - b) <= tolerance) n++;
  }
  return n;
}
