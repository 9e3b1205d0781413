import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Tests that spawn `tierkv serve` run the built CLI: build it once before any test. One
    // PostgreSQL serves the whole run (each test still gets a fresh database).
    globalSetup: ["test/support/build.ts", "test/support/postgres-global.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
