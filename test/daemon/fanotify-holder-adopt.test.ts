/**
 * A daemon adopts the fanotify group holder its run dir names only if that holder holds the group of
 * this run dir: a stale pid file whose pid went to another run dir's holder must not hand this daemon
 * another daemon's group.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { createPreContentGroup } from '../../src/native/fanotify.js';
import { adoptHolder, holderPidPath } from '../../src/daemon/fanotify-holder.js';
import { pidFilePath } from '../../src/daemon/paths.js';

function preContentGroup(): number | string {
  try {
    return createPreContentGroup();
  } catch (err) {
    return (err as Error).message;
  }
}

const group = isRoot ? preContentGroup() : 'not root';
const ready = needs('fanotify holder adoption', [isRoot, 'root'], [typeof group === 'number', `a fanotify pre-content group (${String(group)})`]);
const HOLDER = join(import.meta.dirname, '../../dist/src/daemon/fanotify-holder-main.js');

describe.skipIf(!ready)('fanotify group holder adoption', () => {
  const dirs = [makeTempDir('holder-a'), makeTempDir('holder-b')];
  const [a, b] = dirs.map((d) => d.dir) as [string, string];
  let holder: ChildProcess;

  beforeAll(async () => {
    // The holder stays while the run dir's daemon lives: this process plays that daemon.
    writeFileSync(pidFilePath(a), `${process.pid}\n`);
    holder = spawn(process.execPath, [HOLDER, a], { stdio: ['ignore', 'ignore', 'inherit', group as number] });
    for (let i = 0; i < 100; i++) {
      try {
        if (readFileSync(`/proc/${holder.pid}/cmdline`, 'utf8').includes('fanotify-holder-main.js')
          && readlinkSync(`/proc/${holder.pid}/fd/3`) === 'anon_inode:[fanotify]') break;
      } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  afterAll(() => {
    holder.kill('SIGKILL');
    if (typeof group === 'number') closeSync(group);
    for (const d of dirs) d.remove();
  });

  it('is refused to another run dir whose pid file names it', () => {
    writeFileSync(holderPidPath(b), `${holder.pid}\n`);
    expect(adoptHolder(b)).toBeNull();
  });

  it('is adopted by its own run dir, however the path is spelled', () => {
    for (const dir of [a, `${a}/`, `${a}/../${a.split('/').at(-1)}`]) {
      writeFileSync(holderPidPath(a), `${holder.pid}\n`);
      const held = adoptHolder(dir);
      expect(held?.pid, dir).toBe(holder.pid);
      expect(readlinkSync(`/proc/self/fd/${held!.fd}`)).toBe('anon_inode:[fanotify]');
      closeSync(held!.fd);
    }
  });
});
