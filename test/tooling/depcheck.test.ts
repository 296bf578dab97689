/**
 * `make depcheck` (dependency-cruiser with .dependency-cruiser.cjs) on tiny src/-like trees in a temp
 * dir: a cycle (one side a type-only import) and an upward import fail with the rule's name; a tree
 * that keeps the layering passes (so the failures are the rules', not a broken set-up).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir } from '../helpers/env.js';

const repoRoot = join(import.meta.dirname, '..', '..');
const depcruise = join(repoRoot, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
const config = join(repoRoot, '.dependency-cruiser.cjs');

let cleanup: (() => void) | undefined;
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
});

/** Writes `files` (path → source) into a fresh dir with the repo's tsconfig and runs the check there. */
function cruise(files: Record<string, string>): { status: number | null; output: string } {
  const tmp = makeTempDir('depcheck');
  cleanup = tmp.remove;
  copyFileSync(join(repoRoot, 'tsconfig.json'), join(tmp.dir, 'tsconfig.json'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(tmp.dir, path)), { recursive: true });
    writeFileSync(join(tmp.dir, path), text);
  }
  const r = spawnSync(process.execPath, [depcruise, '--config', config, '--output-type', 'err-long', 'src'], {
    cwd: tmp.dir,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('make depcheck rules', () => {
  it('passes a tree that keeps the layering (cli → mount → cache → util)', () => {
    const r = cruise({
      'src/util/errors.ts': 'export class E extends Error {}\n',
      'src/cache/index.ts': "import { E } from '../util/errors.js';\nexport const c = new E();\n",
      'src/mount/manager.ts': "import { c } from '../cache/index.js';\nexport const m = c;\n",
      'src/cli/main.ts': "import { m } from '../mount/manager.js';\nexport const x = m;\n",
    });
    expect(r.output).toMatch(/no dependency violations found \(4 modules, 3 dependencies cruised\)/);
    expect(r.status).toBe(0);
  });

  it('fails on a cycle between two files, one side a type-only import', () => {
    const r = cruise({
      'src/cache/a.ts': "import type { B } from './b.js';\nexport interface A { b?: B }\n",
      'src/cache/b.ts': "import { type A } from './a.js';\nexport interface B { a?: A }\nexport const n = 1;\n",
    });
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/error no-circular: src\/cache\/a\.ts/);
  });

  it('fails when a folder imports a folder above it (util → cli) and names the rule', () => {
    const r = cruise({
      'src/cli/main.ts': 'export const x = 1;\n',
      'src/util/log.ts': "import { x } from '../cli/main.js';\nexport const y = x;\n",
    });
    expect(r.status).not.toBe(0);
    expect(r.output).toContain('error layer-util: src/util/log.ts → src/cli/main.ts');
  });

  it('fails on a src/ folder missing from the layers table', () => {
    const r = cruise({ 'src/newthing/x.ts': 'export const x = 1;\n' });
    expect(r.status).not.toBe(0);
    expect(r.output).toContain('layer-unknown-folder');
  });
});
