/**
 * Makes test images with many blobs for compat scenarios: COUNT OCI layouts under OUT, each holding one
 * ondemand image whose BLOBS top-level directories each go to their own blob (random contents, so every
 * blob of every image is distinct). The source trees are left under OUT/src<i> for comparison.
 *
 *   many-images.js OUT COUNT BLOBS
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { buildImage } from '../../src/build/builder.js';
import { scanDirectory } from '../../src/build/scan-dir.js';
import { storeInLayout } from '../../src/build/to-layout.js';
import type { SourceNode } from '../../src/build/source.js';

function assignBlob(node: SourceNode, blob: number): void {
  if (node.kind === 'file') node.blob = blob;
  else if (node.kind === 'dir') for (const e of node.entries) assignBlob(e.node, blob);
}

async function main(): Promise<void> {
  const [out, countText, blobsText] = process.argv.slice(2);
  if (out === undefined || countText === undefined || blobsText === undefined) throw new Error('usage: many-images.js OUT COUNT BLOBS');
  const count = Number(countText);
  const blobs = Number(blobsText);
  for (let i = 1; i <= count; i++) {
    const src = join(out, `src${i}`);
    for (let b = 0; b < blobs; b++) {
      mkdirSync(join(src, `part${b}`), { recursive: true });
      writeFileSync(join(src, `part${b}`, 'data.bin'), randomBytes(8192 + ((i * 7919 + b * 104729) % 60000)));
      writeFileSync(join(src, `part${b}`, 'name'), `image ${i} blob ${b}\n`);
    }
    const { root } = scanDirectory(src);
    for (const e of root.entries) assignBlob(e.node, Number(e.name.toString().replace('part', '')));
    const workDir = join(out, `.work${i}`);
    mkdirSync(workDir, { recursive: true });
    const built = await buildImage(root, { workDir, blobCount: blobs, inlineMax: 0 });
    if (built.blobs.length !== blobs) throw new Error(`image ${i}: ${built.blobs.length} blobs, expected ${blobs}`);
    await storeInLayout(built, join(out, `layout${i}`), 'latest');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`many-images: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
