/**
 * What a test needs from the machine. A missing need skips the test with a printed reason on a
 * developer's machine and fails loudly in CI (CI=true), where `make test` has installed everything.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function haveCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const isRoot = process.getuid?.() === 0;
export const inCi = process.env.CI === 'true' || process.env.CI === '1';

/**
 * Returns true when every need holds. Otherwise prints why the caller will skip, or throws in CI.
 * Use as `describe.skipIf(!needs('erofs mounts', [isRoot, 'root'], [haveCommand('fsck.erofs'), 'fsck.erofs']))`.
 */
export function needs(what: string, ...conditions: [boolean, string][]): boolean {
  const missing = conditions.filter(([ok]) => !ok).map(([, name]) => name);
  if (missing.length === 0) return true;
  const reason = `${what}: skipped, missing ${missing.join(', ')}`;
  if (inCi) throw new Error(`${reason} (not allowed in CI: make test installs every need)`);
  process.stderr.write(`SKIP ${reason}\n`);
  return false;
}

/** A temp dir under /var/tmp (a real disk with holes, unlike tmpfs), removed by the returned function. */
export function makeTempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(process.env.ONDEMAND_TEST_TMP ?? '/var/tmp', `ondemand-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export { tmpdir };
