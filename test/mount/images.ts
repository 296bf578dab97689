/** Source trees and images for the mount tests, built with the real `ondemand build`. */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, listFiles, type Harness } from './harness.js';

/** True when the built CLI has `name` (parts built by other areas land over time). */
export function cliHas(name: string): boolean {
  return existsSync(join(repoRoot, 'dist', 'src', 'cli', 'commands', `${name}.js`));
}

export interface TreeOptions { seed: string; bulkBytes?: number }

/** A tree with small (inline), medium and large files, nesting and a symlink; `bulk.bin` makes the image big. */
export function makeTree(dir: string, options: TreeOptions): void {
  mkdirSync(join(dir, 'etc'), { recursive: true });
  mkdirSync(join(dir, 'data', 'nested', 'deeper'), { recursive: true });
  writeFileSync(join(dir, 'etc', 'motd'), `tree ${options.seed}\n`);
  writeFileSync(join(dir, 'data', 'medium.bin'), randomBytes(200 * 1024));
  writeFileSync(join(dir, 'data', 'one-mib-plus-one.bin'), randomBytes(1024 * 1024 + 1));
  writeFileSync(join(dir, 'data', 'nested', 'deeper', 'three-mib.bin'), randomBytes(3 * 1024 * 1024));
  writeFileSync(join(dir, 'data', 'bulk.bin'), randomBytes(options.bulkBytes ?? 16 * 1024 * 1024));
  writeFileSync(join(dir, 'data', 'empty'), '');
  symlinkSync('../etc/motd', join(dir, 'data', 'motd-link'));
}

export function sha(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Every file of `src` read through `mnt`: same paths, same bytes, same link targets. Returns mismatches. */
export function compareTrees(src: string, mnt: string): string[] {
  const bad: string[] = [];
  const a = listFiles(src);
  const b = listFiles(mnt);
  if (a.join('\n') !== b.join('\n')) bad.push(`file lists differ: ${a.length} vs ${b.length}`);
  for (const rel of a) {
    const s = join(src, rel);
    const m = join(mnt, rel);
    if (lstatSync(s).isSymbolicLink()) {
      if (readlinkSync(s) !== readlinkSync(m)) bad.push(`${rel}: link target`);
    } else if (sha(s) !== sha(m)) {
      bad.push(`${rel}: content`);
    }
  }
  return bad;
}

export interface TestImage {
  /** What `ondemand mount` gets before the mountpoint: `--image REF [--blob FILE]...`. */
  args: string[];
  ref: string;
  /** Stored bytes of the image's data (what a full fetch would move). */
  bytes: number;
  how: 'ondemand build' | 'mkfs.erofs';
}

/**
 * Builds `tree` into an OCI layout with `ondemand build`; until that command exists, into a plain
 * chunked erofs image made by mkfs.erofs (`--blob` mounts), which the same daemon path serves.
 * `buildArgs`: options for `ondemand build` (e.g. `--compression none`).
 */
export async function buildImage(h: Harness, tree: string, outDir: string, tag = 'test', buildArgs: string[] = []): Promise<TestImage> {
  if (cliHas('build')) {
    await h.ok('build', ...buildArgs, tree, `oci:${outDir}:${tag}`);
    let bytes = 0;
    const blobsDir = join(outDir, 'blobs', 'sha256');
    for (const f of listFiles(blobsDir)) bytes += lstatSync(join(blobsDir, f)).size;
    const ref = `oci:${outDir}:${tag}`;
    return { args: ['--image', ref], ref, bytes, how: 'ondemand build' };
  }
  mkdirSync(outDir, { recursive: true });
  const meta = join(outDir, 'meta.erofs');
  const blob = join(outDir, 'blob.img');
  execFileSync('mkfs.erofs', ['--quiet', '--chunksize=65536', `--blobdev=${blob}`, meta, tree]);
  return { args: ['--image', meta, '--blob', blob], ref: meta, bytes: lstatSync(blob).size, how: 'mkfs.erofs' };
}

export interface MountStatusJson {
  mountpoint: string; image: string; mode: string; bytesFetched: number; requests: number; hits: number; misses: number;
  passthroughOpens?: number; blobsDirect?: number; prefetch?: string; failedReads: number;
  bytesPresent: number; bytesTotal: number; changedBehind?: number;
}

export async function mountStatus(h: Harness, mountpoint: string): Promise<MountStatusJson> {
  const s = JSON.parse(await h.ok('status', '--json')) as { mounts: MountStatusJson[] };
  const m = s.mounts.find((x) => x.mountpoint === mountpoint);
  if (!m) throw new Error(`${mountpoint} not in status: ${JSON.stringify(s.mounts.map((x) => x.mountpoint))}`);
  return m;
}

/** Pushes an OCI layout with `ondemand push`, or skopeo until that exists. */
export async function pushLayout(h: Harness, layoutRef: string, dest: string): Promise<void> {
  if (cliHas('push')) {
    await h.ok('push', '--insecure', layoutRef, dest);
    return;
  }
  execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', layoutRef, `docker://${dest}`]);
}

/** The lazy modes a restart must keep serving here (fanotify where the kernel has pre-content events). */
export function restartModes(fanotify: boolean): string[] {
  return ['fuse-tree', 'fuse-blobs', ...(fanotify ? ['fanotify'] : [])];
}

/** One image per mode (a tree of its own, `bulkBytes` large, built into a layout under `dir`): the mode, its tree and the mount arguments. */
export async function imagePerMode(h: Harness, dir: string, modes: string[], seed: string, bulkBytes: number): Promise<{ mode: string; tree: string; args: string[] }[]> {
  const images: { mode: string; tree: string; args: string[] }[] = [];
  for (const [i, mode] of modes.entries()) {
    const tree = join(dir, `tree-${i}`);
    makeTree(tree, { seed: `${seed}-${i}`, bulkBytes });
    images.push({ mode, tree, args: (await buildImage(h, tree, join(dir, `layout-${i}`))).args });
  }
  return images;
}
