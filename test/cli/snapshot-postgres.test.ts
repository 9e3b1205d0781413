// `tierkv snapshot` of a PostgreSQL primary (embedded PostgreSQL): one REPEATABLE READ
// transaction's view while Txn writers go on, then status and restore into SQLite.

import { afterEach, it } from "vitest";
import { openPostgresStore } from "../../src/store/postgres.js";
import { usePostgres } from "../support/postgres.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { snapshotWhileWriting } from "./snapshot-scenario.js";

const postgres = usePostgres();
afterEach(removeTempDirs);

it("saves one instant of a PostgreSQL primary while Txn writers go on; status and restore round-trip it", async () => {
  const uri = await postgres().createDatabase();
  await snapshotWhileWriting(tempDir("tierkv-snapshot-pg-"), uri, () => openPostgresStore(uri));
}, 180_000);
