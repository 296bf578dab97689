/** `ondemand detect`: every feature probed with a reason, and the mode `mount` would pick, with why. */
import { afterAll, describe, expect, it } from 'vitest';
import { isRoot, needs } from '../helpers/env.js';
import { cliBuilt, makeHarness } from './harness.js';

interface Report { features: Record<string, { supported: boolean; reason: string }>; mode: string | null; reason: string }
const FEATURES = ['mountSyscall', 'fusermount', 'cachefilesOndemand', 'erofs', 'erofsImages', 'erofsFileBacked', 'fuse', 'fusePassthrough', 'fanotifyPreContent', 'loop'];

describe.skipIf(!needs('detect', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)']))('ondemand detect', () => {
  const h = makeHarness('detect');
  afterAll(async () => { await h.cleanup(); });

  it('reports every feature with a reason and picks a mode with its reason', async () => {
    const r = JSON.parse(await h.ok('detect', '--json')) as Report;
    expect(Object.keys(r.features).sort()).toEqual([...FEATURES].sort());
    for (const f of Object.values(r.features)) {
      expect(typeof f.supported).toBe('boolean');
      expect(f.reason.length).toBeGreaterThan(5);
    }
    expect(r.reason.length).toBeGreaterThan(5);
    // This host (6.18, no cachefiles on-demand): fanotify pre-content events and file-backed erofs,
    // so fanotify, and the reason says why fscache was passed over.
    if (!r.features.cachefilesOndemand!.supported && r.features.fanotifyPreContent!.supported && r.features.erofsFileBacked!.supported) {
      expect(r.mode).toBe('fanotify');
      expect(r.reason).toMatch(/fanotify pre-content events.*passed over: fscache: no cachefiles on-demand mode/);
    }
  });

  it('passes fanotify over for a cache dir on a filesystem without pre-content events (tmpfs), saying so', async () => {
    const r = JSON.parse(await h.ok('detect', '--json', '--cache-dir', '/dev/shm/ondemand-detect-cache')) as Report;
    expect(r.features.fanotifyPreContent!.supported).toBe(false);
    expect(r.features.fanotifyPreContent!.reason).toMatch(/does not allow pre-content events/);
    expect(r.mode).not.toBe('fanotify');
    expect(r.reason).toMatch(/fanotify: no fanotify pre-content events: the cache dir's filesystem/);
  });

  it('prints one line per feature and the chosen mode', async () => {
    const text = await h.ok('detect');
    const lines = text.trim().split('\n');
    expect(lines.filter((l) => /^(cachefiles on-demand|erofs|erofs file-backed|FUSE|FUSE passthrough|fanotify pre-content|loop devices)\s+(yes|no)\s/.test(l))).toHaveLength(7);
    expect(lines.at(-1)).toMatch(/^mode: \S+ \(/);
  });
});
