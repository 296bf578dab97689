/** `ondemand detect`: every feature probed with a reason, and the mode `mount` would pick, with why. */
import { afterAll, describe, expect, it } from 'vitest';
import { isRoot, needs } from '../helpers/env.js';
import { cliBuilt, makeHarness } from './harness.js';

interface Report { features: Record<string, { supported: boolean; reason: string }>; mode: string | null; reason: string }
const FEATURES = ['cachefilesOndemand', 'erofs', 'erofsFileBacked', 'fuse', 'fusePassthrough', 'fanotifyPreContent', 'loop'];

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
    // This host (6.18, no cachefiles on-demand): FUSE + erofs file-backed are there, so fuse-blobs;
    // fanotify is supported by the kernel but not implemented, which the reason says.
    if (!r.features.cachefilesOndemand!.supported && r.features.fuse!.supported && r.features.erofs!.supported) {
      expect(r.mode).toBe('fuse-blobs');
      if (r.features.fanotifyPreContent!.supported) expect(r.reason).toMatch(/fanotify: the kernel supports it, but ondemand does not implement/);
    }
  });

  it('prints one line per feature and the chosen mode', async () => {
    const text = await h.ok('detect');
    const lines = text.trim().split('\n');
    expect(lines.filter((l) => /^(cachefiles on-demand|erofs|erofs file-backed|FUSE|FUSE passthrough|fanotify pre-content|loop devices)\s+(yes|no)\s/.test(l))).toHaveLength(7);
    expect(lines.at(-1)).toMatch(/^mode: \S+ \(/);
  });
});
