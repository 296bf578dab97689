/**
 * `ondemand bench --compare-pull SRC`: the full pull a container start pays without lazy loading.
 * `skopeo copy` of the image's original (unconverted) form from its registry into an OCI layout,
 * `umoci unpack` of it into a root filesystem, then the same start-up command from that tree (the same
 * runner, startup.ts). Both tools are Debian's (skopeo, umoci).
 */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BenchError } from '../util/errors.js';
import { runStartup, type StartupCommand } from './startup.js';
import type { PullSample } from './types.js';
import { makeDirs } from '../util/make-dirs.js';

const exec = promisify(execFile);

/** skopeo's name for `src`: given as is when it names a transport (docker://, oci:, ...), else a registry reference. */
export function skopeoSource(src: string): string {
  return /^(docker|oci|oci-archive|docker-archive|dir|containers-storage|docker-daemon):/.test(src) ? src : `docker://${src}`;
}

async function timed(what: string, file: string, args: string[]): Promise<number> {
  const t0 = performance.now();
  try {
    await exec(file, args, { maxBuffer: 16 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new BenchError(`${what} failed: ${(e.stderr ?? e.message).trim().slice(-2000)}`, { command: `${file} ${args.join(' ')}` }, { cause: err });
  }
  return performance.now() - t0;
}

/** One full pull and start-up of `src` in `dir` (emptied first, removed after). */
export async function pullAndStart(src: string, insecure: boolean, dir: string, cmd: StartupCommand, run: number): Promise<PullSample> {
  rmSync(dir, { recursive: true, force: true });
  makeDirs(dir);
  try {
    const layout = join(dir, 'layout');
    const bundle = join(dir, 'bundle');
    const copyMs = await timed('skopeo copy', 'skopeo', [
      'copy', '--quiet', ...(insecure ? ['--src-tls-verify=false'] : []), skopeoSource(src), `oci:${layout}:pulled`,
    ]);
    const unpackMs = await timed('umoci unpack', 'umoci', ['unpack', '--image', `${layout}:pulled`, bundle]);
    const started = await runStartup(join(bundle, 'rootfs'), join(dir, 'startup'), cmd);
    return { run, copyMs, unpackMs, runMs: started.wallMs, totalMs: copyMs + unpackMs + started.wallMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
