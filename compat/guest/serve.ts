/**
 * Guest-side fscache daemon for compat scenarios: serves erofs images (local bootstrap + blob files)
 * through our FscacheTransport, optionally mounts them (off the serving thread), and on SIGTERM writes
 * its stats and exits. `--hold PID:FD` instead grabs another process's /dev/cachefiles fd with
 * pidfd_getfd and just keeps it open (the fd holder that makes `restore` possible).
 *
 *   serve.js --cache-dir DIR --image fsid=F[,domain=D],bootstrap=P[,blob=TAG:PATH]... [--mount MNT:FSID]...
 *            [--ready FILE] [--stats FILE] [--read-delay-ms N] [--adopt-from PID:FD]
 *   serve.js --hold PID:FD --ready FILE
 */
import { writeFileSync, readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { errno, syscall3, SYS_pidfd_getfd, SYS_pidfd_open } from '../../src/native/libc.js';
import { FscacheTransport, localFileSource, mountErofsFscache, type FscacheImage } from '../../src/transport/fscache/index.js';
import { errorText } from '../../src/util/errors.js';

function grabFd(spec: string): number {
  const [pidText, fdText] = spec.split(':');
  const pidfd = syscall3(SYS_pidfd_open, Number(pidText), 0, 0);
  if (pidfd < 0) throw new Error(`pidfd_open(${pidText}) failed: errno ${errno()}`);
  const fd = syscall3(SYS_pidfd_getfd, pidfd, Number(fdText), 0);
  if (fd < 0) throw new Error(`pidfd_getfd(${spec}) failed: errno ${errno()}`);
  return fd;
}

async function parseImage(spec: string): Promise<FscacheImage & { devices: string[] }> {
  let fsid = '';
  let domainId: string | undefined;
  let bootstrap = '';
  const blobs: { tag: string; path: string }[] = [];
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    const k = part.slice(0, eq);
    const v = part.slice(eq + 1);
    if (k === 'fsid') fsid = v;
    else if (k === 'domain') domainId = v;
    else if (k === 'bootstrap') bootstrap = v;
    else if (k === 'blob') {
      const c = v.indexOf(':');
      blobs.push({ tag: v.slice(0, c), path: v.slice(c + 1) });
    } else throw new Error(`bad --image part '${part}'`);
  }
  return {
    fsid,
    ...(domainId === undefined ? {} : { domainId }),
    bootstrap: await localFileSource(bootstrap),
    blobs: await Promise.all(blobs.map(async (b) => ({ tag: b.tag, source: await localFileSource(b.path) }))),
    devices: blobs.map((b) => b.tag),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'cache-dir': { type: 'string' },
      image: { type: 'string', multiple: true },
      mount: { type: 'string', multiple: true },
      ready: { type: 'string' },
      stats: { type: 'string' },
      'read-delay-ms': { type: 'string' },
      'adopt-from': { type: 'string' },
      hold: { type: 'string' },
      'keep-device': { type: 'boolean' },
    },
  });
  if (values.hold !== undefined) {
    const fd = grabFd(values.hold);
    if (values.ready) writeFileSync(values.ready, JSON.stringify({ pid: process.pid, deviceFd: fd }));
    setInterval(() => undefined, 1 << 30);
    return;
  }
  const delay = values['read-delay-ms'] === undefined ? {} : { readDelayMs: Number(values['read-delay-ms']) };
  const transport = values['adopt-from'] !== undefined
    ? FscacheTransport.adopt(grabFd(values['adopt-from']), delay)
    : FscacheTransport.bind({ cacheDir: values['cache-dir'] ?? '/var/cache/ondemand', tag: 'compat', ...delay });
  const images = new Map<string, FscacheImage & { devices: string[] }>();
  for (const spec of values.image ?? []) {
    const img = await parseImage(spec);
    images.set(img.fsid, img);
    transport.register(img);
  }
  transport.start();
  const fdCount = (): number => readdirSync('/proc/self/fd').length;
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const stats = { ...transport.stats(), fds: fdCount() };
    await transport.close({ keepDevice: values['keep-device'] === true });
    if (values.stats) writeFileSync(values.stats, JSON.stringify({ ...stats, fdsAfterClose: fdCount() }));
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  process.on('SIGUSR1', () => {
    if (values.stats) writeFileSync(`${values.stats}.snapshot`, JSON.stringify({ ...transport.stats(), fds: fdCount() }));
  });
  const fdsBeforeMount = fdCount();
  for (const m of values.mount ?? []) {
    const c = m.lastIndexOf(':');
    const mountpoint = m.slice(0, c);
    const img = images.get(m.slice(c + 1));
    if (img === undefined) throw new Error(`--mount ${m}: no such --image fsid`);
    await mountErofsFscache({ mountpoint, fsid: img.fsid, ...(img.domainId === undefined ? {} : { domainId: img.domainId }), devices: img.devices });
  }
  if (values.ready) writeFileSync(values.ready, JSON.stringify({ pid: process.pid, deviceFd: transport.deviceFd, restoreSupported: transport.restoreSupported, fdsBeforeMount, fds: fdCount() }));
}

main().catch((err: unknown) => {
  process.stderr.write(`serve: ${errorText(err)}\n`);
  process.exit(1);
});
