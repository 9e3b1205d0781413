// The SQLite backend against the shared conformance suite and the backup-ledger contract, plus
// its schema bookkeeping, migration, error classification and group commit.
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { GROUP_COMMIT_MAX_BYTES, GROUP_COMMIT_MAX_MUTATIONS } from "../../src/limits.js";
import { SQLITE_SCHEMA_VERSION, SqliteStore } from "../../src/store/sqlite.js";
import type { KeyRef, KeyState } from "../../src/store/types.js";
import { describeBackupLedger, describeChangeLog, describeConformance } from "../conformance/kvstore-conformance.js";
import { openSqliteHarness } from "../support/sqlite-harness.js";
import { allStoredRows, clockHighest, owedRows } from "../support/sqlite-rows.js";
import { errorOf, text } from "../support/store-assertions.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

describeConformance("sqlite", openSqliteHarness, { pageOrder: "newest-created-first", durable: true });
describeBackupLedger("sqlite", openSqliteHarness);
describeChangeLog("sqlite", openSqliteHarness);

const at = (key: string, storeId?: string): KeyRef => ({ storeId, primaryNamespace: "monitors", secondaryNamespace: "updates", key });
const bytes = (value: string): Uint8Array => new TextEncoder().encode(value);

/** Schema version 1 as tierkv wrote it (MIGRATIONS[0] of src/store/sqlite.ts). */
const SCHEMA_V1 = `CREATE TABLE kv (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     store_id TEXT NOT NULL,
     primary_namespace TEXT NOT NULL,
     secondary_namespace TEXT NOT NULL,
     key TEXT NOT NULL,
     value BLOB NOT NULL,
     version INTEGER NOT NULL,
     UNIQUE (store_id, primary_namespace, secondary_namespace, key)
   );
   CREATE INDEX kv_by_creation ON kv (store_id, primary_namespace, secondary_namespace, seq);`;

/** What no error message may carry: a file path or SQL. */
function expectSafeMessage(message: string, path: string): void {
  expect(message).not.toContain(path);
  expect(message).not.toContain(dirname(path));
  expect(message).not.toMatch(/\.db\b|\b(SELECT|INSERT|UPDATE|DELETE|BEGIN|COMMIT|FROM|WHERE)\b/i);
}

describe("sqlite schema", () => {
  afterEach(removeTempDirs);

  it("records schema version 4, the store id and revision with every row, the ledger, the clock and usage", async () => {
    const path = join(tempDir(), "kv.db");
    const store = new SqliteStore(path);
    await store.write({ primaryNamespace: "a", secondaryNamespace: "b", key: "c" }, new Uint8Array([1]), { version: 7n });
    await store.write({ primaryNamespace: "a", secondaryNamespace: "b", key: "c" }, new Uint8Array([2]), { version: 8n });
    await store.write(at("k", "alice"), new Uint8Array([3]), { version: 5n, owedToBackup: true });
    await store.close();
    const db = new Database(path, { readonly: true });
    expect(SQLITE_SCHEMA_VERSION).toBe(4);
    expect(db.pragma("user_version", { simple: true })).toBe(4);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.prepare("SELECT store_id, key, version, revision FROM kv ORDER BY store_id").all()).toEqual([
      { store_id: "alice", key: "k", version: 5, revision: 1 },
      { store_id: "default", key: "c", version: 8, revision: 2 },
    ]);
    const columns = db.prepare<[], { name: string; notnull: number }>("PRAGMA table_info(kv)").all();
    expect(columns.find((c) => c.name === "revision")).toMatchObject({ notnull: 1 });
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    expect(tables).toEqual(expect.arrayContaining(["clock", "kv", "owed", "usage"]));
    expect(db.prepare("SELECT store_id, keys, bytes FROM usage ORDER BY store_id").all()).toEqual([
      { store_id: "alice", keys: 1, bytes: 1 },
      { store_id: "default", keys: 1, bytes: 1 },
    ]);
    db.close();
    expect(owedRows(path)).toEqual([{ store_id: "alice", primary_namespace: "monitors", secondary_namespace: "updates", key: "k", version: 5n }]);
    expect(clockHighest(path)).toBe(8n);
  });

  it("refuses a file from a newer tierkv", () => {
    const path = join(tempDir(), "kv.db");
    const db = new Database(path);
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => new SqliteStore(path)).toThrow(/newer than this tierkv understands/);
  });

  it("keeps each store id's keys apart in one file, also across connections", async () => {
    const path = join(tempDir(), "kv.db");
    const store = new SqliteStore(path);
    const other = new SqliteStore(path);
    const manager = { primaryNamespace: "", secondaryNamespace: "", key: "manager" };
    await store.write({ ...manager, storeId: "alice" }, new Uint8Array([1]));
    await expect(other.read({ ...manager, storeId: "bob" })).rejects.toMatchObject({ code: "not-found" });
    await expect(other.read(manager)).rejects.toMatchObject({ code: "not-found" });
    expect(await other.list({ ...manager, storeId: "bob" })).toEqual([]);
    expect(await other.list({ ...manager, storeId: "alice" })).toEqual(["manager"]);
    expect([...(await other.read({ ...manager, storeId: "alice" }))]).toEqual([1]);
    await store.close();
    await other.close();
  });

  it("migrates a version-1 file: rows kept at revision 1, owed keys into the ledger, the clock from the rows", async () => {
    const path = join(tempDir(), "kv.db");
    const v1 = new Database(path);
    v1.pragma("journal_mode = WAL");
    v1.exec(SCHEMA_V1);
    const insert = v1.prepare(
      "INSERT INTO kv (store_id, primary_namespace, secondary_namespace, key, value, version) VALUES (?, ?, ?, ?, ?, ?)",
    );
    insert.run("default", "monitors", "updates", "first", Buffer.from("one"), 42);
    insert.run("default", "monitors", "updates", "second", Buffer.from("two"), 17);
    insert.run("_tierkv_owed_to_backup", "monitors", "updates", "first", Buffer.alloc(0), 0);
    insert.run("_tierkv_owed_to_backup", "", "", "manager", Buffer.alloc(0), 0);
    insert.run("default", "", "", "unversioned", Buffer.from("three"), 0);
    v1.pragma("user_version = 1");
    v1.close();

    const store = new SqliteStore(path);
    const first = await store.readVersioned(at("first"));
    expect(text(first.value)).toBe("one");
    expect(first).toMatchObject({ version: 42n, revision: 1n });
    expect(await store.readVersioned(at("second"))).toMatchObject({ version: 17n, revision: 1n });
    expect(await store.readVersioned({ primaryNamespace: "", secondaryNamespace: "", key: "unversioned" })).toMatchObject({
      version: 0n,
      revision: 1n,
    });
    // Creation order survives: newest-created first.
    expect((await store.listPage({ primaryNamespace: "monitors", secondaryNamespace: "updates" })).keys).toEqual(["second", "first"]);
    // The reserved store id is gone from the data; its keys are owed to the backup now.
    const all = await store.listAllKeys({ allStores: true });
    expect(all.keys.map((k) => `${k.storeId}:${k.primaryNamespace}/${k.secondaryNamespace}/${k.key}@${k.version}#${k.revision}`)).toEqual([
      "default://unversioned@0#1",
      "default:monitors/updates/first@42#1",
      "default:monitors/updates/second@17#1",
    ]);
    expect(await store.listOwed(10)).toEqual([
      { storeId: "default", primaryNamespace: "", secondaryNamespace: "", key: "manager", version: 0n, revision: 0n },
      { storeId: "default", primaryNamespace: "monitors", secondaryNamespace: "updates", key: "first", version: 0n, revision: 0n },
    ]);
    expect(await store.countOwed()).toBe(2);
    expect(await store.highestVersion()).toBe(42n);
    // Revisions count on from the migrated 1.
    await store.write(at("first"), bytes("one again"));
    expect(await store.readVersioned(at("first"))).toMatchObject({ version: 42n, revision: 2n });
    await store.settleOwed(at("first"), 0n);
    expect(await store.countOwed()).toBe(1);
    await store.close();

    const db = new Database(path, { readonly: true });
    expect(db.pragma("user_version", { simple: true })).toBe(4);
    // Version 3 counted every store's usage from its rows.
    expect(db.prepare("SELECT store_id, keys, bytes FROM usage").all()).toEqual([{ store_id: "default", keys: 3, bytes: 17 }]);
    db.close();
    expect(allStoredRows(path).map((r) => [r.store_id, r.key, r.version, r.revision])).toEqual([
      ["default", "unversioned", 0n, 1n],
      ["default", "first", 42n, 2n],
      ["default", "second", 17n, 1n],
    ]);
    // Opening the migrated file again changes nothing.
    const reopened = new SqliteStore(path);
    expect(await reopened.highestVersion()).toBe(42n);
    expect(await reopened.countOwed()).toBe(1);
    await reopened.close();
  });

  it("migrates an empty version-1 file with the clock at 0", async () => {
    const path = join(tempDir(), "kv.db");
    const v1 = new Database(path);
    v1.exec(SCHEMA_V1);
    v1.pragma("user_version = 1");
    v1.close();
    const store = new SqliteStore(path);
    expect(await store.highestVersion()).toBe(0n);
    expect(await store.countOwed()).toBe(0);
    await store.close();
  });
});

describe("sqlite errors", () => {
  afterEach(removeTempDirs);

  it("answers unavailable within about a second while another connection holds the write lock", async () => {
    const path = join(tempDir(), "kv.db");
    const store = new SqliteStore(path);
    await store.write(at("k"), bytes("before"), { version: 1n });
    const blocker = new Database(path);
    blocker.exec("BEGIN IMMEDIATE");
    try {
      for (const attempt of [
        () => store.write(at("k"), bytes("during"), { version: 2n }),
        () => store.remove(at("k")),
        () => store.txn({ checks: [], operations: [{ ...at("t"), kind: "write", value: bytes("x") }] }),
        () => store.settleOwed(at("k"), 1n),
      ]) {
        const started = Date.now();
        const error = await errorOf(attempt());
        expect(Date.now() - started).toBeLessThan(1000);
        expect(error.code).toBe("unavailable");
        expect(error.retryable).toBe(true);
        expectSafeMessage(error.message, path);
      }
      // Reads go on (WAL): a writer elsewhere does not block them.
      expect(text(await store.read(at("k")))).toBe("before");
    } finally {
      blocker.exec("ROLLBACK");
      blocker.close();
    }
    // Nothing of the refused mutations was applied; the store works again once the lock is gone.
    expect(await store.readVersioned(at("k"))).toMatchObject({ version: 1n, revision: 1n });
    expect(await store.write(at("k"), bytes("after"), { version: 3n })).toBe("applied");
    expect(await store.readVersioned(at("k"))).toMatchObject({ version: 3n, revision: 2n });
    await store.close();
  });

  it("refuses every mutation of a batch that meets the lock and applies none of them", async () => {
    const path = join(tempDir(), "kv.db");
    const store = new SqliteStore(path);
    await store.write(at("early"), bytes("v"));
    const blocker = new Database(path);
    blocker.exec("BEGIN IMMEDIATE");
    const results = await Promise.allSettled([store.write(at("a"), bytes("v")), store.write(at("b"), bytes("v"))]);
    blocker.exec("ROLLBACK");
    blocker.close();
    for (const result of results) {
      expect(result.status).toBe("rejected");
      expect((result as PromiseRejectedResult).reason).toMatchObject({ code: "unavailable" });
    }
    expect(await store.list({ primaryNamespace: "monitors", secondaryNamespace: "updates" })).toEqual(["early"]);
    await store.close();
  });

  it("answers unavailable once closed, without a path or SQL in the message", async () => {
    const path = join(tempDir(), "kv.db");
    const store = new SqliteStore(path);
    await store.write(at("k"), bytes("v"));
    await store.close();
    const ns = { primaryNamespace: "monitors", secondaryNamespace: "updates" };
    const errors = await Promise.all([
      errorOf(store.write(at("k"), bytes("v"))),
      errorOf(store.remove(at("k"))),
      errorOf(store.txn({ checks: [{ ...at("k"), expect: "present" }], operations: [] })),
      errorOf(store.read(at("k"))),
      errorOf(store.readVersioned(at("k"))),
      errorOf(store.list(ns)),
      errorOf(store.listPage(ns)),
      errorOf(store.listAllKeys()),
      errorOf(store.highestVersion()),
      errorOf(store.listOwed(10)),
      errorOf(store.countOwed()),
    ]);
    for (const error of errors) {
      expect(error.code).toBe("unavailable");
      expectSafeMessage(error.message, path);
    }
    // Closing twice is harmless.
    await store.close();
  });

  it("commits the mutations accepted before close", async () => {
    const path = join(tempDir(), "kv.db");
    const store = new SqliteStore(path);
    const pending = [store.write(at("a"), bytes("1")), store.write(at("b"), bytes("2"), { owedToBackup: true })];
    await store.close();
    expect(await Promise.all(pending)).toEqual(["applied", "applied"]);
    const reopened = new SqliteStore(path);
    expect(text(await reopened.read(at("a")))).toBe("1");
    expect(await reopened.countOwed()).toBe(1);
    await reopened.close();
  });
});

describe("sqlite group commit", () => {
  afterEach(removeTempDirs);

  /** Records the size (count and value bytes) of every transaction the store commits. */
  function spyOnCommits(store: SqliteStore): Array<{ count: number; bytes: number }> {
    const internals = store as unknown as { applyAll: (batch: ReadonlyArray<{ bytes: number }>) => unknown[] };
    const original = internals.applyAll;
    expect(typeof original).toBe("function");
    const commits: Array<{ count: number; bytes: number }> = [];
    internals.applyAll = (batch) => {
      commits.push({ count: batch.length, bytes: batch.reduce((sum, m) => sum + m.bytes, 0) });
      return original(batch);
    };
    return commits;
  }

  it("commits 2,000 writes of one turn in transactions of at most GROUP_COMMIT_MAX_MUTATIONS", async () => {
    const path = join(tempDir(), "kv.db");
    const store = new SqliteStore(path);
    const commits = spyOnCommits(store);
    const writes = Array.from({ length: 2000 }, (_, i) => store.write(at(`k${i}`), bytes(`v${i}`), { version: BigInt(i + 1) }));
    expect(await Promise.all(writes)).toEqual(Array(2000).fill("applied"));
    expect(commits.reduce((sum, c) => sum + c.count, 0)).toBe(2000);
    expect(Math.max(...commits.map((c) => c.count))).toBeLessThanOrEqual(GROUP_COMMIT_MAX_MUTATIONS);
    expect(commits.length).toBeGreaterThanOrEqual(Math.ceil(2000 / GROUP_COMMIT_MAX_MUTATIONS));
    // Batching, not one transaction per write.
    expect(commits.length).toBeLessThan(100);
    const all = await store.list({ primaryNamespace: "monitors", secondaryNamespace: "updates" });
    expect(all).toHaveLength(2000);
    for (const i of [0, 511, 512, 1023, 1999]) {
      const stored = await store.readVersioned(at(`k${i}`));
      expect(text(stored.value)).toBe(`v${i}`);
      expect(stored).toMatchObject({ version: BigInt(i + 1), revision: 1n });
    }
    expect(await store.highestVersion()).toBe(2000n);
    await store.close();
    const reopened = new SqliteStore(path);
    expect(await reopened.list({ primaryNamespace: "monitors", secondaryNamespace: "updates" })).toHaveLength(2000);
    await reopened.close();
  });

  it("keeps every transaction within GROUP_COMMIT_MAX_BYTES of values", async () => {
    const path = join(tempDir(), "kv.db");
    const store = new SqliteStore(path);
    const commits = spyOnCommits(store);
    const size = Math.floor(GROUP_COMMIT_MAX_BYTES / 3) + 1;
    const values = Array.from({ length: 6 }, (_, i) => new Uint8Array(size).fill(i + 1));
    const outcomes = await Promise.all(values.map((value, i) => store.write(at(`big${i}`), value)));
    expect(outcomes).toEqual(Array(6).fill("applied"));
    expect(commits.reduce((sum, c) => sum + c.count, 0)).toBe(6);
    for (const commit of commits) expect(commit.bytes).toBeLessThanOrEqual(GROUP_COMMIT_MAX_BYTES);
    expect(commits.map((c) => c.count)).toEqual([2, 2, 2]);
    for (const [i, value] of values.entries()) {
      expect(Buffer.compare(Buffer.from(await store.read(at(`big${i}`))), Buffer.from(value))).toBe(0);
    }
    await store.close();
  });

  it("settles owed keys in the next commit, not in one of their own", async () => {
    const path = join(tempDir(), "kv.db");
    const store = new SqliteStore(path);
    await store.write(at("a"), bytes("a"), { version: 1n, owedToBackup: true });
    const commits = spyOnCommits(store);
    const settled = store.settleOwed(at("a"), 1n);
    await new Promise((resolve) => setImmediate(resolve));
    expect(commits).toEqual([]); // waiting for a ride
    await store.write(at("b"), bytes("b"), { version: 2n, owedToBackup: true });
    await settled;
    expect(commits.map((c) => c.count)).toEqual([2]); // the write and the settle together
    expect(owedRows(path).map((row) => row.key)).toEqual(["b"]);
    await store.close();
  });

  it("commits a settle without a ride after a while (LEDGER_SETTLE_DELAY_MS), or before the ledger is read", async () => {
    const path = join(tempDir(), "kv.db");
    const store = new SqliteStore(path);
    for (const key of ["a", "b"]) await store.write(at(key), bytes(key), { version: 1n, owedToBackup: true });
    await store.settleOwed(at("a"), 1n);
    expect(owedRows(path).map((row) => row.key)).toEqual(["b"]);
    const settled = store.settleOwed(at("b"), 1n);
    expect(await store.countOwed()).toBe(0);
    await settled;
    await store.close();
  });

  it("commits a value larger than GROUP_COMMIT_MAX_BYTES on its own", async () => {
    const path = join(tempDir(), "kv.db");
    const store = new SqliteStore(path);
    const commits = spyOnCommits(store);
    const huge = new Uint8Array(GROUP_COMMIT_MAX_BYTES + 1).fill(7);
    const results = await Promise.all([store.write(at("small"), bytes("s")), store.write(at("huge"), huge), store.write(at("after"), bytes("a"))]);
    expect(results).toEqual(["applied", "applied", "applied"]);
    expect(commits.map((c) => c.count)).toEqual([1, 1, 1]);
    expect((await store.read(at("huge"))).byteLength).toBe(GROUP_COMMIT_MAX_BYTES + 1);
    await store.close();
  });
});

describe("sqlite state reports", () => {
  afterEach(removeTempDirs);

  it("reports the state a mutation stored, or the one that made it stale, once committed", async () => {
    const store = new SqliteStore(join(tempDir(), "kv.db"));
    const states: KeyState[] = [];
    const onState = (state: KeyState): void => void states.push(state);
    expect(store.reportsState).toBe(true);
    await store.write(at("k"), bytes("1"), { version: 10n, plain: true, onState });
    await store.write(at("k"), bytes("2"), { version: 5n, plain: true, onState }); // moved past the stored 10
    expect(await store.write(at("k"), bytes("stale"), { version: 7n, onState })).toBe("stale");
    await store.remove(at("k"), { version: 20n, onState });
    expect(await store.remove(at("k"), { version: 15n, onState })).toBe("applied"); // absent: nothing to be stale against
    expect(states).toEqual([
      { version: 10n, revision: 1n },
      { version: 11n, revision: 2n },
      { version: 11n, revision: 2n },
      { version: 20n, revision: 0n },
      { version: 15n, revision: 0n },
    ]);
    await store.close();
  });
});
