/** `ondemand convert --json`: progress as JSON lines on stderr, the result alone on stdout. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/env.js';
import { ondemand } from '../image/cli.js';
import { gzLayer, makeSourceLayout } from './layout-maker.js';
import { makeTar } from './tar-maker.js';

describe('convert progress', () => {
  let tmp: { dir: string; remove: () => void };
  beforeAll(async () => {
    tmp = makeTempDir('convert-progress');
    await makeSourceLayout(join(tmp.dir, 'src'), 'p', [
      gzLayer(makeTar([{ name: 'a.txt', data: 'a\n' }])),
      gzLayer(makeTar([{ name: 'b.bin', data: Buffer.alloc(100_000, 7) }])),
    ]);
  });
  afterAll(() => tmp.remove());

  it('--json: phase events on stderr as JSON lines, one JSON result on stdout', () => {
    const r = ondemand(['convert', '--json', `oci:${join(tmp.dir, 'src')}:p`, `oci:${join(tmp.dir, 'out')}:c`]);
    expect(r.code, r.stderr).toBe(0);
    const events = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as { event: string; layer?: number; layers?: number });
    // Byte progress of a layer (`progress`, labelled with the layer) may come between its start and end.
    const phases = events.filter((e) => e.event !== 'progress');
    expect(phases.map((e) => e.event)).toEqual(['layer-start', 'layer-done', 'layer-start', 'layer-done', 'build-start', 'build-done']);
    expect(phases[2]).toMatchObject({ layer: 2, layers: 2 });
    for (const e of events.filter((x) => x.event === 'progress')) expect(e).toMatchObject({ label: expect.stringMatching(/^layer \d$/) as unknown });
    expect((JSON.parse(r.stdout) as { digest: string }).digest).toMatch(/^sha256:/);
  });

  it('without --json and off a terminal: plain lines on stderr', () => {
    const r = ondemand(['convert', `oci:${join(tmp.dir, 'src')}:p`, `oci:${join(tmp.dir, 'out2')}:c`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('\x1b');
    expect(r.stderr).toMatch(/^layer 1\/2 sha256:\S+ \(0\.0 MiB\)\n/);
    expect(r.stderr).toContain('building: ');
  });
});
