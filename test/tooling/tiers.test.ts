/**
 * The vitest projects (tiers) in vitest.config.ts: every test file under src/, test/ and compat/ is in
 * exactly one, and each file's tier matches what it asks of the machine (test/helpers/env.ts `isRoot`,
 * test/helpers/registry.ts `startRegistry`, compat/vm.ts `ensureKernel` or compat/suite.ts `compatSuite`).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const repoRoot = join(import.meta.dirname, '..', '..');
const vitest = join(repoRoot, 'node_modules', 'vitest', 'vitest.mjs');

function testFiles(): string[] {
  const out: string[] = [];
  for (const top of ['src', 'test', 'compat']) {
    for (const name of readdirSync(join(repoRoot, top), { recursive: true }) as string[]) {
      if (name.endsWith('.test.ts')) out.push(join(top, name));
    }
  }
  return out.sort();
}

function listedByProject(): Map<string, string[]> {
  const r = spawnSync(process.execPath, [vitest, 'list', '--filesOnly', '--json'], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  const byFile = new Map<string, string[]>();
  for (const { file, projectName } of JSON.parse(r.stdout) as { file: string; projectName: string }[]) {
    const rel = relative(repoRoot, file);
    byFile.set(rel, [...(byFile.get(rel) ?? []), projectName]);
  }
  return byFile;
}

describe('vitest tiers', () => {
  const byFile = listedByProject();

  it('puts every test file in exactly one project', () => {
    expect([...byFile.keys()].sort()).toEqual(testFiles());
    expect([...byFile].filter(([, projects]) => projects.length !== 1)).toEqual([]);
  });

  it("matches each file's tier to what it needs", () => {
    const wrong: string[] = [];
    for (const [file, [tier]] of byFile) {
      if (file === 'test/tooling/tiers.test.ts') continue; // names the markers itself
      const text = readFileSync(join(repoRoot, file), 'utf8');
      const root = /\bisRoot\b/.test(text);
      const registry = /\bstartRegistry\b/.test(text);
      const vm = /\b(ensureKernel|compatSuite)\b/.test(text);
      const expected = vm ? 'compat' : registry ? 'registry' : root ? 'host' : 'unit';
      if (tier !== expected) wrong.push(`${file}: in ${tier}, looks like ${expected}`);
    }
    expect(wrong).toEqual([]);
  });
});
