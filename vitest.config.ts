import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'compat/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Mount, registry and VM tests share the host's kernel and its 2 cores: keep files in a small pool.
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
