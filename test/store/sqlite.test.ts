// The SQLite backend against the shared conformance suite, plus its schema bookkeeping.
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { SQLITE_SCHEMA_VERSION, SqliteStore } from "../../src/store/sqlite.js";
import { describeConformance } from "../conformance/kvstore-conformance.js";
import { openSqliteHarness } from "../support/sqlite-harness.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

describeConformance("sqlite", openSqliteHarness, { pageOrder: "newest-created-first", durable: true });

describe("sqlite schema", () => {
  afterEach(removeTempDirs);

  it("records its schema version and the store id with every row", async () => {
    const path = join(tempDir(), "kv.db");
    const store = new SqliteStore(path);
    await store.write({ primaryNamespace: "a", secondaryNamespace: "b", key: "c" }, new Uint8Array([1]), { version: 7n });
    await store.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma("user_version", { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.prepare("SELECT store_id, key, version FROM kv").all()).toEqual([
      { store_id: "default", key: "c", version: 7 },
    ]);
    db.close();
  });

  it("refuses a file from a newer tierkv", () => {
    const path = join(tempDir(), "kv.db");
    const db = new Database(path);
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => new SqliteStore(path)).toThrow(/newer than this tierkv understands/);
  });

  it("sees only its own store id's keys", async () => {
    const path = join(tempDir(), "kv.db");
    const alice = new SqliteStore(path, { storeId: "alice" });
    const bob = new SqliteStore(path, { storeId: "bob" });
    const ref = { primaryNamespace: "", secondaryNamespace: "", key: "manager" };
    await alice.write(ref, new Uint8Array([1]));
    await expect(bob.read(ref)).rejects.toMatchObject({ code: "not-found" });
    expect(await bob.list(ref)).toEqual([]);
    await alice.close();
    await bob.close();
  });
});
