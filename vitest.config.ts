import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Tests that spawn `tierkv serve` run the built CLI: build it once before any test. One
    // PostgreSQL serves the whole run (each test still gets a fresh database).
    globalSetup: ["test/support/build.ts", "test/support/postgres-global.ts"],
    // Most files wait on child processes and sockets, not the CPU: one file more than there are
    // cores keeps the machine busy (vitest's default, cores - 1, runs files one at a time on two).
    // VITEST_MAX_WORKERS overrides it.
    maxWorkers: availableParallelism() + 1,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
