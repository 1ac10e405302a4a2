// Vitest configuration: test/**/*.test.ts in at most 2 forked workers, sharing the PostgreSQL servers from global-setup.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
    // Vitest 4: pool options are top-level (poolOptions was removed).
    pool: 'forks',
    maxWorkers: 2,
    fileParallelism: true,
    globalSetup: ['test/support/global-setup.ts'],
  },
});
