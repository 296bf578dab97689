/** Tests that run compiled code (child processes, the CLI) rebuild dist/ when it is older than src/. */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const repoRoot = join(import.meta.dirname, '..', '..');

function newestTs(path: string): number {
  if (!existsSync(path)) return 0;
  if (!statSync(path).isDirectory()) return statSync(path).mtimeMs;
  let newest = 0;
  for (const name of readdirSync(path, { recursive: true }) as string[]) {
    if (name.endsWith('.ts')) newest = Math.max(newest, statSync(join(path, name)).mtimeMs);
  }
  return newest;
}

/**
 * Rebuilds dist/ if `builtFile` (relative to the repo) is missing or older than any .ts under
 * `sources` (the code the test runs; other areas' edits do not force a slow rebuild).
 */
export function ensureBuilt(builtFile: string, sources: string[]): string {
  const built = join(repoRoot, builtFile);
  const newest = Math.max(...sources.map((s) => newestTs(join(repoRoot, s))));
  if (!existsSync(built) || statSync(built).mtimeMs < newest) {
    try {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: repoRoot, stdio: 'pipe' });
    } catch {
      // tsc still emits when another area is mid-edit with type errors; only our output matters.
    }
  }
  if (!existsSync(built)) throw new Error(`${builtFile} missing after building dist/`);
  return built;
}
