// `tierkv migrate` round trip sqlite → postgres → fs → sqlite through the real CLI: every store,
// namespace, key and byte survives; versions survive as far as the fs layout (which keeps none).
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { PostgresStore, openPostgresStore } from "../../src/store/postgres.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { usePostgres } from "../support/postgres.js";
import { runCli } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { expectSameData, seed, snapshot } from "./fixtures.js";

const postgres = usePostgres();
afterEach(removeTempDirs);

it("round-trips sqlite → postgres → fs → sqlite", async () => {
  const dir = tempDir("tierkv-migrate-pg-");
  const source = join(dir, "source.db");
  const seeded = new SqliteStore(source);
  await seed(seeded, 4);
  const data = await snapshot(seeded);
  await seeded.close();

  const pg = await postgres().createDatabase();
  const steps: Array<[string, string]> = [
    [`sqlite:${source}`, pg],
    [pg, `fs:${join(dir, "ldk")}`],
    [`fs:${join(dir, "ldk")}`, `sqlite:${join(dir, "back.db")}`],
  ];
  for (const [from, to] of steps) {
    const result = await runCli(["migrate", "--from", from, "--to", to, "--checkpoint", join(dir, "cp")]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.toString()).toMatch(/^migrate done: copied \d+ keys/);
  }

  // In PostgreSQL: every key with its version and revision.
  const inPostgres: PostgresStore = await openPostgresStore(pg);
  expectSameData(await snapshot(inPostgres), data, true);
  await inPostgres.close();
  // Back in SQLite: every byte (versions were lost in the fs layout, as documented).
  const back = new SqliteStore(join(dir, "back.db"));
  expectSameData(await snapshot(back), data, false);
  await back.close();
});
