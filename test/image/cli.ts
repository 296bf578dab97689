/** Runs the compiled CLI (building dist/ first when sources are newer). */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ensureBuilt, repoRoot } from '../cache/dist-build.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

let built = false;

export function ondemand(args: string[], timeoutMs = 600_000): CliResult {
  if (!built) {
    ensureBuilt('dist/src/cli/commands/build.js', ['src/build', 'src/format', 'src/resolve', 'src/fetch', 'src/cli', 'src/native']);
    built = true;
  }
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin/ondemand'), ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
