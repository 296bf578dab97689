/**
 * makeDirs, the `mkdir -p` every command uses for the directories it is given: makes what is missing
 * (with the mode), says whether it made anything, and fails at once where a filesystem refuses the
 * directory — Node's recursive mkdir never returns there (procfs answers ENOENT under /proc).
 */
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeDirs } from '../../src/util/make-dirs.js';
import { makeTempDir } from '../helpers/env.js';
import { ondemand } from '../image/cli.js';

describe('makeDirs', () => {
  const tmp = makeTempDir('make-dirs');
  afterAll(() => tmp.remove());

  it('makes the missing directories with the mode, and returns the first it made', () => {
    const deep = join(tmp.dir, 'a', 'b', 'c');
    expect(makeDirs(deep, 0o700)).toBe(join(tmp.dir, 'a'));
    for (const d of [join(tmp.dir, 'a'), join(tmp.dir, 'a', 'b'), deep]) expect(statSync(d).mode & 0o777).toBe(0o700);
    expect(makeDirs(deep)).toBeUndefined();
  });

  it('a file in the way is EEXIST (at the end) or ENOTDIR (on the way)', () => {
    const file = join(tmp.dir, 'file');
    writeFileSync(file, '');
    expect(() => makeDirs(file)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    expect(() => makeDirs(join(file, 'sub'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
  });

  it('a filesystem that refuses the directory fails at once, naming it', () => {
    expect(() => makeDirs('/proc/ondemand-test/x')).toThrow(expect.objectContaining({ code: 'ENOENT', path: '/proc/ondemand-test' }));
  });

  it('commands given such a place fail in one line instead of hanging', () => {
    const src = join(tmp.dir, 'src');
    makeDirs(src);
    writeFileSync(join(src, 'f'), 'x');
    expect(ondemand(['build', src, `oci:${tmp.dir}/layout:v1`]).code).toBe(0);
    for (const args of [['build', src, 'oci:/proc/ondemand-test:v1'], ['export', `oci:${tmp.dir}/layout:v1`, '/proc/ondemand-test']]) {
      const r = ondemand(args, 30_000);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(/^ondemand: [^\n]*\/proc\/ondemand-test[^\n]*\n$/);
    }
  }, 60_000);
});
