/**
 * Where the reader thread's module is. A Worker cannot run TypeScript, so the thread always runs
 * compiled code: next to reader.js in tsc's output; under vitest (this file is the .ts source) from
 * the build in dist/ (tsconfig: rootDir ".", outDir "dist"), which must exist and be up to date —
 * a stale thread would test old code, so that is an error too.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { OndemandError } from '../util/errors.js';

const ENTRY = 'reader-thread.js';

export function readerThreadUrl(): URL {
  if (!import.meta.url.endsWith('.ts')) return new URL(`./${ENTRY}`, import.meta.url);
  const repo = fileURLToPath(new URL('../../', import.meta.url));
  const entry = join(repo, 'dist', 'src', 'fuse', ENTRY);
  if (!existsSync(entry)) throw new OndemandError('EFUSE', `${entry} is missing: run make build (the FUSE reader thread runs compiled code)`);
  const stale = staleSource(entry, join(repo, 'dist'), repo);
  if (stale !== undefined) throw new OndemandError('EFUSE', `${stale} changed since the last build: run make build (the FUSE reader thread runs compiled code)`);
  return pathToFileURL(entry);
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
