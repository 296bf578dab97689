/** Tests that run compiled code (child processes, the CLI) rebuild dist/ when it is older than src/. */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const repoRoot = join(import.meta.dirname, '..', '..');

function newestTs(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    if (name.endsWith('.ts')) newest = Math.max(newest, statSync(join(dir, name)).mtimeMs);
  }
  return newest;
}

/** Rebuilds dist/ if `builtFile` (relative to the repo) is missing or older than src/. */
export function ensureBuilt(builtFile: string): string {
  const built = join(repoRoot, builtFile);
  if (!existsSync(built) || statSync(built).mtimeMs < newestTs(join(repoRoot, 'src'))) {
    try {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: repoRoot, stdio: 'pipe' });
    } catch {
      // tsc still emits when another area is mid-edit with type errors; only our output matters.
    }
  }
  if (!existsSync(built)) throw new Error(`${builtFile} missing after building dist/`);
  return built;
}
