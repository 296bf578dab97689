/**
 * Guest-side stand-in for the daemon in compat scenarios: mounts images with the product's transports
 * (mount-image.ts: cache backend, in-process kernel broker), serves them until SIGTERM, then unmounts
 * every one by unwinding its undo stack and writes the device server's counters. `--adopt-from` takes a
 * killed server's /dev/cachefiles fd from a holder and re-attaches its mounts (`--reattach`) with
 * `restore`. `--hold PID:FD` instead grabs another process's /dev/cachefiles fd with pidfd_getfd and just
 * keeps it open (the fd holder that makes `restore` possible).
 *
 *   serve.js --cache-dir DIR [--image id=ID,ref=REF[,blob=PATH]...]... [--mount MNT:ID[:MODE]]...
 *            [--adopt-from PID:FD --reattach MNT:ID...] [--ready FILE] [--stats FILE] [--fetch-delay-ms N]
 *   serve.js --hold PID:FD --ready FILE
 * MODE: fscache (default), fuse-blobs, or local (the cache's complete files on loop devices).
 */
import { readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openCache } from '../../src/cache/backend.js';
import { cacheOptions } from '../../src/daemon/worker.js';
import { errno, syscall3, SYS_pidfd_getfd, SYS_pidfd_open } from '../../src/native/libc.js';
import { deviceServer } from '../../src/transport/fscache/transport.js';
import { InProcessKernel } from '../../src/transport/in-process-kernel.js';
import { reattachDone } from '../../src/transport/index.js';
import { probeFeatures } from '../../src/transport/kernel-features.js';
import { MOUNT_MODES } from '../../src/transport/types.js';
import { errorText } from '../../src/util/errors.js';
import { UndoStack } from '../../src/util/undo-stack.js';
import { mountImage, reattachImage, type GuestMode, type GuestMountOptions, type ImageSpec } from './mount-image.js';

function grabFd(spec: string): number {
  const [pidText, fdText] = spec.split(':');
  const pidfd = syscall3(SYS_pidfd_open, Number(pidText), 0, 0);
  if (pidfd < 0) throw new Error(`pidfd_open(${pidText}) failed: errno ${errno()}`);
  const fd = syscall3(SYS_pidfd_getfd, pidfd, Number(fdText), 0);
  if (fd < 0) throw new Error(`pidfd_getfd(${spec}) failed: errno ${errno()}`);
  return fd;
}

function parseImage(spec: string): ImageSpec {
  const image: ImageSpec = { id: '', ref: '', blobFiles: [] };
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    const [k, v] = [part.slice(0, eq), part.slice(eq + 1)];
    if (k === 'id') image.id = v;
    else if (k === 'ref') image.ref = v;
    else if (k === 'blob') image.blobFiles.push(v);
    else throw new Error(`bad --image part '${part}'`);
  }
  if (!image.id || !image.ref) throw new Error(`--image ${spec}: id= and ref= are required`);
  return image;
}

/** `MNT:ID[:MODE]` */
function parseMount(spec: string, images: Map<string, ImageSpec>): { mountpoint: string; image: ImageSpec; mode: GuestMode } {
  const [mountpoint = '', id = '', mode = 'fscache'] = spec.split(':');
  const image = images.get(id);
  if (!image) throw new Error(`${spec}: no --image with id ${id}`);
  if (mode !== 'local' && !(MOUNT_MODES as readonly string[]).includes(mode)) throw new Error(`${spec}: unknown mode ${mode}`);
  return { mountpoint, image, mode: mode as GuestMode };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'cache-dir': { type: 'string' },
      image: { type: 'string', multiple: true },
      mount: { type: 'string', multiple: true },
      reattach: { type: 'string', multiple: true },
      ready: { type: 'string' },
      stats: { type: 'string' },
      'fetch-delay-ms': { type: 'string' },
      'adopt-from': { type: 'string' },
      hold: { type: 'string' },
    },
  });
  if (values.hold !== undefined) {
    const fd = grabFd(values.hold);
    if (values.ready) writeFileSync(values.ready, JSON.stringify({ pid: process.pid, deviceFd: fd }));
    setInterval(() => undefined, 1 << 30);
    return;
  }
  const cacheDir = values['cache-dir'] ?? '/var/cache/ondemand';
  // Before anything opens /dev/cachefiles: the probe opens it too (one opener at a time).
  const features = probeFeatures();
  const adopt = values['adopt-from'];
  const kernel = new InProcessKernel({ cacheDir, ...(adopt === undefined ? {} : { adoptCachefiles: { fd: grabFd(adopt), restoreSupported: true } }) });
  const cache = await openCache(cacheOptions(cacheDir));
  const blobFilesDir = join(cache.dir, 'blobs') + '/';
  // Blob files the cache keeps open until its idle timeout are not the mounts' fds.
  const fdCount = (): number => readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return !readlinkSync(`/proc/self/fd/${fd}`).startsWith(blobFilesDir);
    } catch {
      return false; // the directory's own fd, gone by now
    }
  }).length;
  const images = new Map((values.image ?? []).map((s) => parseImage(s)).map((i) => [i.id, i]));
  const mounted: { mountpoint: string; undo: UndoStack }[] = [];
  const options = (undo: UndoStack): GuestMountOptions => ({
    cache, kernel: kernel.broker(undo), features, privateRoot: join(tmpdir(), 'ondemand-serve'),
    ...(values['fetch-delay-ms'] === undefined ? {} : { fetchDelayMs: Number(values['fetch-delay-ms']) }),
  });
  const each = async (specs: string[] | undefined, make: (m: ReturnType<typeof parseMount>, o: GuestMountOptions) => Promise<unknown>): Promise<void> => {
    for (const spec of specs ?? []) {
      const m = parseMount(spec, images);
      const undo = new UndoStack();
      try {
        await make(m, options(undo));
      } catch (err) {
        await undo.unwind();
        throw err;
      }
      mounted.push({ mountpoint: m.mountpoint, undo });
    }
  };

  if (adopt !== undefined) {
    await each(values.reattach, (m, o) => reattachImage(m.image, m.mountpoint, o));
    reattachDone();
  }
  // Binds /dev/cachefiles unless adopted (and fails here on a kernel without on-demand mode).
  const server = await deviceServer(kernel.broker());
  const fdsBeforeMount = fdCount();

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const undoFailures: string[] = [];
    for (const m of mounted.reverse()) undoFailures.push(...(await m.undo.unwind()));
    // CLOSEs arrive after the (lazy) unmounts return; their anon fds close when served.
    for (let i = 0; i < 100 && (server.stats().openObjects > 0 || fdCount() > fdsBeforeMount); i++) await new Promise((r) => setTimeout(r, 100));
    if (values.stats) writeFileSync(values.stats, JSON.stringify({ ...server.stats(), undoFailures: undoFailures.length, fds: fdCount() }));
    await cache.close();
    process.exit(0);
  };
  const stopOnSignal = (): void => {
    stop().catch((err: unknown) => {
      process.stderr.write(`serve: stopping: ${errorText(err)}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', stopOnSignal);
  process.on('SIGINT', stopOnSignal);

  await each(values.mount, (m, o) => mountImage(m.image, m.mountpoint, m.mode, o));
  if (values.ready) writeFileSync(values.ready, JSON.stringify({ pid: process.pid, deviceFd: server.deviceFd, restoreSupported: server.restoreSupported, fdsBeforeMount, fds: fdCount() }));
}

main().catch((err: unknown) => {
  process.stderr.write(`serve: ${errorText(err)}\n`);
  process.exit(1);
});
