import { defineConfig } from 'vitest/config';

/**
 * Tiers (vitest projects), by what a test file needs from the machine (read from its imports and its
 * `needs(...)` in test/helpers/env.ts). `make test` runs all four; `make test-unit` etc. run one.
 * - host: root on this host — real mounts (FUSE, erofs, loop, ext4/tmpfs/overlay), mknod/chown, the daemon;
 * - registry: a real docker-registry (started by test/helpers/registry.ts), often with mounts too;
 * - compat: real kernels under QEMU;
 * - unit: everything else (no root, no mount, no registry, no VM). It may run the built CLI or tools
 *   such as mkfs.erofs and zstd. A new test file lands here unless it is listed below.
 */
const host = [
  'test/cli/build-disk-full.test.ts',
  'test/cli/config-daemon.test.ts',
  'test/cli/daemon-start.test.ts',
  'test/cli/mountpoint.test.ts',
  'test/cli/umount-busy.test.ts',
  'test/cli/umount-namespace-copy.test.ts',
  'test/cache/disk.test.ts',
  'test/cache/live-tamper.test.ts',
  'test/convert/tar.test.ts',
  'test/convert/whiteout.test.ts',
  // All of test/daemon/ but the fanotify crash tests (they need a registry).
  'test/daemon/!(fanotify-crash).test.ts',
  'test/erofs/kernel.test.ts',
  'test/erofs/mkfs-interop.test.ts',
  'test/fuse/fast-read.test.ts',
  'test/fuse/fuse-blobs-cache.test.ts',
  'test/fuse/fuse-blobs.test.ts',
  'test/fuse/fuse-tree-thread.test.ts',
  'test/fuse/protocol.test.ts',
  'test/image/debian.test.ts',
  'test/image/hard-cases.test.ts',
  'test/image/multi-blob.test.ts',
  'test/metrics/scrape.test.ts',
  'test/mount/cache-verify.test.ts',
  'test/mount/detect.test.ts',
  'test/mount/devices.test.ts',
  'test/mount/faults.test.ts',
  'test/mount/fuse-tree.test.ts',
  'test/mount/live-tamper.test.ts',
  'test/mount/local-layout.test.ts',
  'test/mount/many.test.ts',
  'test/mount/prefetch.test.ts',
  'test/mount/prefetch-paths-mount.test.ts',
  'test/mount/rootless.test.ts',
  'test/mount/unwind.test.ts',
  'test/util/mount-namespace.test.ts',
];

const registry = [
  // All of test/registry/ but its pure parsing tests (an extglob: a new file there needs a registry).
  'test/registry/!(parsing).test.ts',
  // `ondemand bench` end to end (every mode, its daemon, the HTML in Chromium) and a mode failing mid-run.
  'test/bench/*.test.ts',
  'test/cli/caller-credentials.test.ts',
  'test/cli/registry-options.test.ts',
  'test/convert/oracle.test.ts',
  'test/convert/overlapped-upload.test.ts',
  'test/convert/registry-auth.test.ts',
  'test/faults/campaign.test.ts',
  'test/image/skopeo.test.ts',
  'test/daemon/fanotify-crash.test.ts',
  'test/metrics/registry-hang.test.ts',
  'test/mount/debian.test.ts',
  'test/mount/fanotify.test.ts',
  'test/mount/offline.test.ts',
  'test/mount/registry.test.ts',
  'test/mount/resend.test.ts',
  'test/mount/shared-blobs.test.ts',
  'test/mount/startup-trace.test.ts',
];
const compat = ['compat/**/*.test.ts'];

const all = ['src/**/*.test.ts', 'test/**/*.test.ts', 'compat/**/*.test.ts'];
const defaultExclude = ['**/node_modules/**', '**/dist/**'];

export default defineConfig({
  test: {
    // No include here: projects that `extends: true` would add it to their own (arrays are merged).
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Mount, registry and VM tests share the host's kernel and its 2 cores: keep files in a small pool.
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: all, exclude: [...defaultExclude, ...host, ...registry, ...compat] },
      },
      { extends: true, test: { name: 'host', include: host, exclude: defaultExclude } },
      { extends: true, test: { name: 'registry', include: registry, exclude: defaultExclude } },
      { extends: true, test: { name: 'compat', include: compat, exclude: defaultExclude } },
    ],
  },
});
