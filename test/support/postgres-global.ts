//! Vitest global setup: one PostgreSQL for the whole run (embedded, or TIERKV_TEST_PG_URL's),
//! handed to test files through `provide`; test/support/postgres.ts's `usePostgres` uses it.

import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "./postgres-server.js";

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const external = process.env["TIERKV_TEST_PG_URL"];
  if (external) {
    project.provide("tierkvPostgres", { adminUri: external, embedded: false });
    return undefined;
  }
  const server = await startEmbeddedPostgres();
  project.provide("tierkvPostgres", { adminUri: server.adminUri, embedded: true });
  return () => server.stop();
}
