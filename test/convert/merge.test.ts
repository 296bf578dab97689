/**
 * Merge rules in memory, including orders real tars produce that the end-to-end tests do not:
 * whiteouts and opaque markers after same-layer entries, duplicates, implicit parents, symlinked
 * parents, and hard links that share one node across layers.
 */
import { describe, expect, it } from 'vitest';
import { bufferContent } from '../../src/build/source.js';
import { LayerApplier, emptyRoot, emptyStats, type MergedDir, type MergedNode } from '../../src/convert/merge.js';
import type { TarEntry, TarEntryType } from '../../src/convert/tar.js';

function entry(path: string, type: TarEntryType = 'file', extra: Partial<TarEntry> = {}): TarEntry {
  return {
    type, path: Buffer.from(path), linkPath: Buffer.alloc(0), size: 0, perm: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0,
    mtime: 0n, mtimeNsec: 0, devMajor: 0, devMinor: 0, xattrs: [], headerOffset: 0, ...extra,
  };
}

async function apply(root: MergedDir, layer: number, entries: (TarEntry | [TarEntry, string])[]): Promise<void> {
  const a = new LayerApplier(root, layer, `layer ${layer}`, async (body) => {
    const parts: Buffer[] = [];
    for await (const p of body) parts.push(p);
    return bufferContent(Buffer.concat(parts));
  }, emptyStats());
  for (const e of entries) {
    const [ent, data] = Array.isArray(e) ? e : [e, ''];
    const bytes = Buffer.from(data);
    ent.size = ent.type === 'file' ? bytes.length : 0;
    await a.apply(ent, (async function* () {
      if (bytes.length > 0) yield bytes;
    })());
  }
}

function paths(root: MergedDir): string[] {
  const out: string[] = [];
  const walk = (d: MergedDir, prefix: string): void => {
    for (const [name, c] of [...d.children].sort()) {
      const p = prefix + name;
      out.push(c.node.kind === 'dir' ? p + '/' : p);
      if (c.node.kind === 'dir') walk(c.node, p + '/');
    }
  };
  walk(root, '');
  return out;
}

function at(root: MergedDir, path: string): MergedNode | undefined {
  let n: MergedNode | undefined = root;
  for (const part of path.split('/')) n = n?.kind === 'dir' ? n.children.get(part)?.node : undefined;
  return n;
}

describe('merge rules', () => {
  it('a whiteout after the same layer re-made the directory hides only the lower contents', async () => {
    const root = emptyRoot();
    await apply(root, 0, [entry('a/', 'dir'), [entry('a/old'), 'old'], entry('a/sub/', 'dir'), [entry('a/sub/deep'), 'deep']]);
    await apply(root, 1, [entry('a/', 'dir'), [entry('a/new'), 'new'], entry('a/sub/', 'dir'), [entry('a/sub/new2'), 'n'], entry('.wh.a')]);
    expect(paths(root)).toEqual(['a/', 'a/new', 'a/sub/', 'a/sub/new2']);
  });

  it('an opaque marker after same-layer children keeps them, before them too', async () => {
    const root = emptyRoot();
    await apply(root, 0, [entry('o/', 'dir'), [entry('o/lower'), 'l'], entry('p/', 'dir'), [entry('p/lower'), 'l']]);
    await apply(root, 1, [[entry('o/upper'), 'u'], entry('o/.wh..wh..opq'), entry('p/.wh..wh..opq'), [entry('p/upper'), 'u']]);
    expect(paths(root)).toEqual(['o/', 'o/upper', 'p/', 'p/upper']);
  });

  it('a whiteout never hides an entry of its own layer; other .wh..wh. names are ignored', async () => {
    const root = emptyRoot();
    await apply(root, 0, [[entry('f'), 'one']]);
    await apply(root, 1, [[entry('f'), 'two'], entry('.wh.f'), entry('.wh..wh.plnk')]);
    expect(paths(root)).toEqual(['f']);
  });

  it('duplicates: the later entry wins; dir over file and file over dir replace', async () => {
    const root = emptyRoot();
    await apply(root, 0, [[entry('x'), 'first'], [entry('x'), 'second'], entry('d/', 'dir'), [entry('d/c'), 'c'], [entry('f'), 'f']]);
    await apply(root, 1, [[entry('d'), 'now a file'], entry('f/', 'dir')]);
    expect(paths(root)).toEqual(['d', 'f/', 'x']);
    const x = at(root, 'x');
    expect(x?.kind === 'file' && x.content.size).toBe(6);
  });

  it('makes missing parents, refuses symlinked and non-directory parents', async () => {
    const root = emptyRoot();
    await apply(root, 0, [[entry('deep/er/file'), 'x'], entry('link', 'symlink', { linkPath: Buffer.from('/') }), [entry('plain'), 'p']]);
    expect(paths(root)).toEqual(['deep/', 'deep/er/', 'deep/er/file', 'link', 'plain']);
    await expect(apply(root, 1, [[entry('link/etc/passwd'), 'evil']])).rejects.toThrow(/layer 1: entry "link\/etc\/passwd": parent "link" is a symlink/);
    await expect(apply(root, 1, [[entry('plain/x'), 'evil']])).rejects.toThrow(/parent "plain" is not a directory/);
  });

  it('hard links share the node, across layers too; later replacement of one name keeps the other', async () => {
    const root = emptyRoot();
    await apply(root, 0, [[entry('bin/tool', 'file', { perm: 0o755 }), 'tool']]);
    await apply(root, 1, [entry('bin/alias', 'hardlink', { linkPath: Buffer.from('/bin/tool') })]);
    expect(at(root, 'bin/alias')).toBe(at(root, 'bin/tool'));
    const tool = at(root, 'bin/tool');
    expect(tool?.kind === 'file' && tool.blob).toBe(0); // its chunks stay in layer 0's blob
    await apply(root, 2, [[entry('bin/tool'), 'new tool']]);
    expect(at(root, 'bin/alias')).toBe(tool);
    expect(at(root, 'bin/tool')).not.toBe(tool);
  });

  it('strips leading slashes and dots; normalises symlink modes', async () => {
    const root = emptyRoot();
    await apply(root, 0, [[entry('/./abs//x'), 'x'], entry('./s', 'symlink', { linkPath: Buffer.from('../../etc'), perm: 0o644 })]);
    expect(paths(root)).toEqual(['abs/', 'abs/x', 's']);
    expect(at(root, 's')?.perm).toBe(0o777);
  });
});
