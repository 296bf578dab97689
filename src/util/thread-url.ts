/**
 * Where a worker thread's module is. A Worker cannot run TypeScript, so a thread always runs compiled
 * code: next to its caller in tsc's output; under vitest (the caller is a .ts source) from the build
 * in dist/ (tsconfig: rootDir ".", outDir "dist"), which must exist and be up to date — a stale thread
 * would test old code, so that is an error too.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { OndemandError } from './errors.js';

/** The URL of `entry` (a .js file beside the module at `moduleUrl`) that a Worker can run. */
export function compiledThreadUrl(moduleUrl: string, entry: string, code: string): URL {
  if (!moduleUrl.endsWith('.ts')) return new URL(`./${entry}`, moduleUrl);
  const modulePath = fileURLToPath(moduleUrl);
  const repo = modulePath.slice(0, modulePath.lastIndexOf('/src/') + 1);
  const built = join(repo, 'dist', relative(repo, dirname(modulePath)), entry);
  if (!existsSync(built)) throw new OndemandError(code, `${built} is missing: run make build (threads run compiled code)`);
  const stale = staleSource(built, join(repo, 'dist'), repo);
  if (stale !== undefined) throw new OndemandError(code, `${stale} changed since the last build: run make build (threads run compiled code)`);
  return pathToFileURL(built);
}

/** A source of `built` or of the modules it imports (relative imports, transitively) newer than its build. */
function staleSource(built: string, distRoot: string, srcRoot: string, seen = new Set<string>()): string | undefined {
  if (seen.has(built)) return undefined;
  seen.add(built);
  const source = join(srcRoot, relative(distRoot, built)).replace(/\.js$/, '.ts');
  if (existsSync(source) && statSync(source).mtimeMs > statSync(built).mtimeMs) return source;
  for (const m of readFileSync(built, 'utf8').matchAll(/^(?:import|export)\b[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]/gm)) {
    const stale = staleSource(join(dirname(built), m[1]!), distRoot, srcRoot, seen);
    if (stale !== undefined) return stale;
  }
  return undefined;
}
