/**
 * The FUSE protocol against the real kernel: a toy filesystem mounted as the daemon mounts FUSE (the
 * kernel broker's openFuse, in-process) and served by a FuseSession, exercised by child processes and
 * async fs calls (a synchronous call from this process would wait for a reply this very thread has to
 * write).
 */
import { pipePagesAllowed } from '../../src/native/pipe.js';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readFileSync } from 'node:fs';
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pbkdf2 } from 'node:crypto';
import { abortFuseConnection, mountDevice, setReadAhead } from '../../src/fuse/connection.js';
import { FuseSession } from '../../src/fuse/session.js';
import type { FuseConnectionParams } from '../../src/fuse/types.js';
import { MNT_DETACH, umount2 } from '../../src/native/libc.js';
import { closeQuietly } from '../../src/native/fd.js';
import { FUSE_READ_AHEAD_KB } from '../../src/transport/fuse-blobs/transport.js';
import { InProcessKernel } from '../../src/transport/in-process-kernel.js';
import { UndoStack } from '../../src/util/undo-stack.js';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { ToyFs, fileContent } from './toy-fs.js';

const run = promisify(execFile);
const FILES = 150;
const sizeOf = (i: number): number => [0, 1, 4095, 4096, 4097, 131073, 1048576 + 3][i % 7]! + (i % 7 === 6 ? i : 0);

function mounted(path: string): boolean {
  return readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === path);
}

describe.skipIf(!needs('FUSE protocol tests', [isRoot, 'root']))('FUSE session on /dev/fuse', () => {
  const tmp = makeTempDir('fuse-proto');
  const mnt = join(tmp.dir, 'mnt');
  const fs = new ToyFs(FILES, sizeOf);
  const kernel = new InProcessKernel();
  const undo = new UndoStack();
  const broker = kernel.broker(undo);
  /** The session serving `mnt`, this process's fd of the connection, and what INIT settled. */
  let m: { session: FuseSession; fd: number; params: FuseConnectionParams; device: string } | undefined;

  beforeAll(async () => {
    mkdirSync(mnt);
    const fd = await broker.openFuse(mnt, 'ondemand', 'default_permissions');
    const session = FuseSession.start(fd, fs, { name: mnt });
    const params = await session.ready();
    const device = mountDevice(mnt);
    setReadAhead(device, FUSE_READ_AHEAD_KB);
    m = { session, fd, params, device };
  });

  afterAll(async () => {
    try {
      await undo.unwind();
    } finally {
      if (m) {
        if (mounted(mnt)) abortFuseConnection(m.device);
        await m.session.stop();
        closeQuietly(m.fd);
      }
      if (mounted(mnt)) umount2(mnt, MNT_DETACH);
      await kernel.unmakeAll();
      tmp.remove();
    }
  });

  it('negotiates INIT: 1 MiB reads, read-ahead raised, passthrough offered by this kernel', () => {
    // 255 pages when a pipe cannot hold a spliced 1 MiB reply (no CAP_SYS_RESOURCE, as on this host).
    expect(m!.params).toMatchObject({ minor: 40, maxPages: pipePagesAllowed() > 256 ? 256 : 255 });
    expect(m!.params.passthrough).toBe(true);
    expect(readFileSync(`/sys/class/bdi/${m!.device}/read_ahead_kb`, 'utf8').trim()).toBe('1024');
    expect(readFileSync('/proc/mounts', 'utf8')).toContain(`${mnt} fuse.ondemand ro,nosuid,nodev`);
  });

  it('lists, looks up and stats every file', async () => {
    const names = (await readdir(mnt)).sort();
    expect(names).toEqual([...Array.from({ length: FILES }, (_, i) => `f${i}`), 'link', 'slow', 'sub'].sort());
    for (let i = 0; i < FILES; i += 7) {
      const st = await stat(join(mnt, `f${i}`));
      expect(st.size).toBe(sizeOf(i));
      expect(st.mode).toBe(0o100644);
      expect(st.mtimeMs).toBe(1700000000500);
    }
    expect((await stat(join(mnt, 'sub'))).isDirectory()).toBe(true);
    expect(await readlink(join(mnt, 'link'))).toBe('sub/inner');
    expect(await readFile(join(mnt, 'link'), 'utf8')).toBe('inner file\n');
    await expect(stat(join(mnt, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
    const { stdout } = await run('ls', ['-la', join(mnt, 'sub')]);
    expect(stdout).toContain('inner');
    const df = await run('stat', ['-f', '-c', '%S %l', mnt]);
    expect(df.stdout.trim()).toBe('4096 255');
  });

  it('reads every file byte for byte (sha256 through cat)', async () => {
    const { stdout } = await run('sh', ['-c', `cd ${mnt} && for f in f*; do sha256sum $f; done`], { maxBuffer: 1 << 24 });
    const got = new Map(stdout.trim().split('\n').map((l) => { const [h, n] = l.split(/\s+/); return [n!, h!]; }));
    const { createHash } = await import('node:crypto');
    for (let i = 0; i < FILES; i++) {
      expect(got.get(`f${i}`), `f${i}`).toBe(createHash('sha256').update(fileContent(i, sizeOf(i))).digest('hex'));
    }
  });

  it('serves 64 parallel reads with requests overlapping', async () => {
    await run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
    fs.readDelayMs = 5;
    fs.maxActiveReads = 0;
    try {
      const big = Array.from({ length: FILES }, (_, i) => i).filter((i) => i % 7 >= 5).slice(0, 64);
      const procs = big.map((i) => run('dd', [`if=${join(mnt, `f${i}`)}`, 'of=/dev/null', 'bs=64k', 'iflag=direct']).catch(() =>
        run('cat', [join(mnt, `f${i}`)], { encoding: 'buffer', maxBuffer: 1 << 22 })));
      await Promise.all(procs);
      const all = await Promise.all(big.map((i) => readFile(join(mnt, `f${i}`))));
      all.forEach((b, k) => expect(b.equals(fileContent(big[k]!, sizeOf(big[k]!)))).toBe(true));
    } finally {
      fs.readDelayMs = 0;
    }
    expect(fs.maxActiveReads).toBeGreaterThan(4);
  });

  it('aborts slow READs when their readers are killed (INTERRUPT); pending READs park no threadpool thread', async () => {
    const before = m!.session.stats().interrupts;
    const READERS = 8; // twice UV_THREADPOOL_SIZE
    const children = Array.from({ length: READERS }, () => spawn('dd', [`if=${join(mnt, 'slow')}`, 'of=/dev/null', 'bs=4096', 'count=1'], { stdio: 'ignore' }));
    const exits = children.map((c) => new Promise<string | null>((resolve) => c.on('exit', (_code, signal) => resolve(signal))));
    for (let t = 0; t < 200 && fs.slowStarted < READERS; t++) await new Promise((r) => setTimeout(r, 50));
    expect(fs.slowStarted).toBe(READERS);
    // With READERS requests pending, the daemon's own threadpool work (fs, crypto) still runs at once.
    const t0 = Date.now();
    await readFile('/proc/self/status');
    await new Promise<void>((resolve, reject) => pbkdf2('x', 'y', 1, 32, 'sha256', (err) => (err ? reject(err) : resolve())));
    expect(Date.now() - t0).toBeLessThan(1000);
    for (const c of children) c.kill('SIGKILL');
    expect(await Promise.all(exits)).toEqual(Array(READERS).fill('SIGKILL'));
    for (let t = 0; t < 40 && fs.slowAborted < READERS; t++) await new Promise((r) => setTimeout(r, 50));
    expect(fs.slowAborted).toBe(READERS);
    expect(m!.session.stats().interrupts).toBeGreaterThanOrEqual(before + READERS);
    expect(m!.session.stats().inFlight).toBe(0);
    expect((await readFile(join(mnt, 'sub', 'inner'), 'utf8'))).toBe('inner file\n');
  });

  it('answers unknown opcodes with ENOSYS (lseek SEEK_DATA → FUSE_LSEEK, getxattr)', async () => {
    const before = m!.session.stats().unsupported;
    const script = `import os,errno
fd=os.open(${JSON.stringify(join(mnt, 'f5'))}, os.O_RDONLY)
print(os.lseek(fd, 10, os.SEEK_DATA))
try:
    os.getxattr(${JSON.stringify(join(mnt, 'f5'))}, 'user.x'); print('xattr?')
except OSError as e: print(e.errno)`;
    const { stdout } = await run('python3', ['-c', script]);
    // The kernel falls back to the generic lseek; GETXATTR's ENOSYS becomes EOPNOTSUPP (95).
    expect(stdout.trim().split('\n')).toEqual(['10', '95']);
    expect(m!.session.stats().unsupported).toBeGreaterThanOrEqual(before + 1);
  });

  it('hands the connection to a new session: fd via the broker (pidfd_getfd), no INIT, unanswered requests resent', async () => {
    const old = m!;
    const params = old.params;
    const [started, aborted] = [fs.slowStarted, fs.slowAborted];
    // A READ the old session takes and never answers (as if its process died).
    const child = spawn('dd', [`if=${join(mnt, 'slow')}`, 'of=/dev/null', 'bs=4096', 'count=1'], { stdio: 'ignore' });
    const exited = new Promise<string | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    for (let t = 0; t < 100 && fs.slowStarted === started; t++) await new Promise((r) => setTimeout(r, 50));
    expect(fs.slowStarted).toBe(started + 1);
    await old.session.stop();

    // As a restarted daemon worker: a duplicate of the fd the broker's owner holds.
    const owned = kernel.objects.find((o) => o.kind === 'fuse' && o.path === mnt);
    const fd = broker.adoptFd(owned?.kind === 'fuse' ? owned.fd : -1);
    expect(fd).toBeGreaterThan(0);
    closeQuietly(old.fd);
    m = { ...old, fd, session: FuseSession.fromFd(fd, fs, params, { name: mnt }) };
    expect(m.session.params).toEqual(params);
    // FUSE_NOTIFY_RESEND: the kernel gives the pending READ to the new session.
    for (let t = 0; t < 100 && fs.slowStarted === started + 1; t++) await new Promise((r) => setTimeout(r, 50));
    expect(fs.slowStarted).toBe(started + 2);
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    for (let t = 0; t < 40 && fs.slowAborted < aborted + 2; t++) await new Promise((r) => setTimeout(r, 50));
    expect(fs.slowAborted).toBe(aborted + 2); // the old handler (on stop) and the new one (INTERRUPT)
    expect(await readFile(join(mnt, 'f3'))).toEqual(fileContent(3, sizeOf(3)));
    expect(m.session.stats().interrupts).toBeGreaterThanOrEqual(1);
  });

  it('refuses a missing mountpoint with a MountError and leaves nothing mounted', async () => {
    const missing = join(tmp.dir, 'missing');
    await expect(broker.openFuse(missing, 'ondemand', 'default_permissions')).rejects.toMatchObject({ code: 'EMOUNT', errno: 2 });
    expect(mounted(missing)).toBe(false);
  });

  it('unmounts: the reader sees the connection go away', async () => {
    expect(await undo.unwind()).toEqual([]); // the FUSE mount unmade: detached, the owner's fd closed
    expect(await m!.session.whenEnded()).toBe(19);
    expect(mounted(mnt)).toBe(false);
    closeQuietly(m!.fd);
    m = undefined;
  });
});
