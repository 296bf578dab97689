/** Tests that run compiled code (child processes, the CLI) rebuild dist/ when it is older than src/. */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

/**
 * A private, validated copy of dist/src for child processes: other helpers rebuild dist/ at any
 * moment, and a child importing a half-written file fails. The copy lives under node_modules/.cache
 * (so pino and koffi resolve from the repo's node_modules) with its own {"type":"module"}.
 * Returns the copy's src folder and a remover.
 */
export function privateDistCopy(entry: string): { src: string; remove: () => void } {
  const base = join(repoRoot, 'node_modules', '.cache', `ondemand-cache-test-${process.pid}`);
  const remove = (): void => rmSync(base, { recursive: true, force: true });
  for (let attempt = 0; attempt < 10; attempt++) {
    remove();
    mkdirSync(base, { recursive: true });
    writeFileSync(join(base, 'package.json'), '{"type":"module"}\n');
    try {
      cpSync(join(repoRoot, 'dist', 'src'), join(base, 'src'), { recursive: true });
      execFileSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(join(base, 'src', entry))})`], { stdio: 'pipe' });
      return { src: join(base, 'src'), remove };
    } catch {
      execFileSync('sleep', ['2']);
    }
  }
  remove();
  throw new Error('could not take a consistent copy of dist/src (is a build running?)');
}
