/**
 * A small real erofs image with one blob device, made by mkfs.erofs from a generated tree:
 * directories, files of awkward sizes, a 3 MiB random file, symlinks, a hardlink, an empty file.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

const run = promisify(execFile);

export interface ErofsImage {
  src: string;
  meta: string;
  blob: string;
}

export async function makeErofsImage(dir: string, bigFileBytes = 3 * 1024 * 1024): Promise<ErofsImage> {
  const src = join(dir, 'src');
  mkdirSync(join(src, 'a', 'b'), { recursive: true });
  mkdirSync(join(src, 'c'));
  writeFileSync(join(src, 'big'), randomBytes(bigFileBytes));
  writeFileSync(join(src, 'a', 'hello'), 'hello\n');
  for (const [i, size] of [0, 1, 4095, 4096, 4097, 65536, 65537, 100000, 1048577].entries()) {
    writeFileSync(join(src, 'c', `f${i}`), randomBytes(size));
  }
  symlinkSync('../big', join(src, 'a', 'b', 'link'));
  symlinkSync('dangling-target', join(src, 'dangling'));
  linkSync(join(src, 'a', 'hello'), join(src, 'c', 'hard'));
  writeFileSync(join(src, 'empty'), '');
  const meta = join(dir, 'meta.img');
  const blob = join(dir, 'blob.img');
  await run('mkfs.erofs', ['--chunksize=1048576', `--blobdev=${blob}`, meta, src]);
  return { src, meta, blob };
}

/** sha256 of every regular file under a tree, keyed by relative path (computed by a child process). */
export async function treeHashes(root: string): Promise<string> {
  const { stdout } = await run('sh', ['-c', 'cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum', 'sh', root], { maxBuffer: 1 << 24 });
  return stdout;
}

/** A metadata listing (mode, size, link target, link count; no directory sizes, they differ by fs) of a tree. */
export async function treeListing(root: string): Promise<string> {
  const { stdout } = await run('sh', ['-c', "cd \"$1\" && find . \\( -type d -printf '%p %M %n\\n' \\) -o -printf '%p %M %s %l %n\\n' | sort", 'sh', root], { maxBuffer: 1 << 24 });
  return stdout;
}
