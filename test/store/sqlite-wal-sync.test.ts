// Commits synced off the event loop (src/store/sqlite-wal-sync.ts): a commit resolves only after a
// sync that began after it; commits meanwhile share the next sync; a read answers only once what
// it could see is synced; a failed sync fails its commits and every later call of the store; the
// store checkpoints itself, so the WAL stays bounded; and nothing is lost across close and reopen.
import { statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, expect, it } from "vitest";
import { StoreError } from "../../src/store/errors.js";
import { SQLITE_PAGE_BYTES, SqliteStore, walCheckpointPages } from "../../src/store/sqlite.js";
import { WalSync } from "../../src/store/sqlite-wal-sync.js";
import { walBytesAtCheckpoint } from "../../src/store/sqlite-wal.js";
import type { KeyRef } from "../../src/store/types.js";
import { integrityCheck } from "../support/sqlite-rows.js";
import { text } from "../support/store-assertions.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

afterEach(() => removeTempDirs());

const at = (key: string): KeyRef => ({ primaryNamespace: "monitors", secondaryNamespace: "", key });
const bytes = (value: string): Uint8Array => new TextEncoder().encode(value);

/** A database in WAL mode with a written WAL file (kept while the connection is open). */
function walDatabase(): { path: string; db: Database.Database } {
  const path = join(tempDir(), "kv.db");
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.exec("CREATE TABLE t (x INTEGER)");
  return { path, db };
}

/** A sync the test finishes by hand: each call waits in `calls` until `finish` is called. */
function manualSync() {
  type Done = (error: NodeJS.ErrnoException | null) => void;
  const calls: Done[] = [];
  const sync = (_fd: number, done: Done): void => void calls.push(done);
  return { sync, calls, finish: (error: NodeJS.ErrnoException | null = null) => calls.shift()!(error) };
}

async function settled(promise: Promise<unknown>): Promise<"pending" | "resolved" | "rejected"> {
  let state: "pending" | "resolved" | "rejected" = "pending";
  promise.then(
    () => (state = "resolved"),
    () => (state = "rejected"),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return state;
}

it("resolves a commit only after a sync that began after it; commits meanwhile share the next one", async () => {
  const { path, db } = walDatabase();
  const { sync, calls, finish } = manualSync();
  const wal = new WalSync(path, sync);
  const first = wal.commit();
  expect(calls).toHaveLength(1);
  const second = wal.commit();
  const third = wal.commit();
  expect(calls).toHaveLength(1); // one sync at a time
  expect(await settled(wal.durable()!)).toBe("pending");
  finish();
  expect(await settled(first)).toBe("resolved");
  expect(await settled(second)).toBe("pending"); // committed after the first sync began
  expect(calls).toHaveLength(1); // the next sync covers both
  finish();
  expect([await settled(second), await settled(third)]).toEqual(["resolved", "resolved"]);
  expect(wal.durable()).toBeUndefined();
  wal.close();
  db.close();
});

it("fails every waiting and later commit after a failed sync, with a message naming no path", async () => {
  const { path, db } = walDatabase();
  const { sync, finish } = manualSync();
  const wal = new WalSync(path, sync);
  const waiting = [wal.commit(), wal.commit()];
  finish(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }));
  for (const commit of waiting) await expect(commit).rejects.toMatchObject({ code: "unavailable" });
  await expect(wal.commit()).rejects.toThrow(/failed to sync the store's log \(EIO\); the store refuses every call until tierkv is restarted/);
  await expect(wal.durable()!).rejects.toBeInstanceOf(StoreError);
  expect(wal.failure?.message).not.toContain(path);
  wal.close();
  db.close();
});

it("answers a read that sees a commit only once that commit is synced (after the write it saw resolves)", async () => {
  const store = new SqliteStore(join(tempDir(), "kv.db"));
  await store.write(at("k"), bytes("old"));
  for (let round = 0; round < 20; round++) {
    const order: string[] = [];
    const written = store.write(at("k"), bytes(`v${round}`)).then(() => order.push("write"));
    // Two turns later the commit has run (its sync is on the thread pool): the read sees it.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    const read = store.read(at("k")).then((value) => order.push(`read ${text(value)}`));
    await Promise.all([written, read]);
    expect(order).toEqual(["write", `read v${round}`]);
  }
  await store.close();
});

it("a store whose sync fails acknowledges nothing more, refuses reads and writes, and never checkpoints again", async () => {
  const path = join(tempDir(), "kv.db");
  const store = new SqliteStore(path);
  // The WAL is opened for syncing at the first commit: gone, that sync fails (ENOENT) as a failing disk would.
  unlinkSync(`${path}-wal`);
  await expect(store.write(at("a"), bytes("v"))).rejects.toMatchObject({ code: "unavailable", message: expect.stringContaining("ENOENT") });
  await expect(store.write(at("b"), bytes("v"))).rejects.toMatchObject({ code: "unavailable" });
  await expect(store.read(at("a"))).rejects.toMatchObject({ code: "unavailable" });
  await expect(store.pruneChanges({ maxCount: 1 }, 10)).rejects.toMatchObject({ code: "unavailable" });
  // Closing would copy the unsynced frames into the database (a checkpoint): it leaves it alone.
  const before = statSync(path).mtimeMs;
  await store.close();
  expect(statSync(path).mtimeMs).toBe(before);
});

it("refuses mutations once close has begun, and commits those accepted before it", async () => {
  const path = join(tempDir(), "kv.db");
  const store = new SqliteStore(path);
  const accepted = store.write(at("a"), bytes("v"));
  const closed = store.close();
  await expect(store.write(at("b"), bytes("v"))).rejects.toMatchObject({ code: "unavailable", message: "the store is closed" });
  await accepted;
  await closed;
  const reopened = new SqliteStore(path);
  expect(text(await reopened.read(at("a")))).toBe("v");
  await expect(reopened.read(at("b"))).rejects.toMatchObject({ code: "not-found" });
  await reopened.close();
});

it("keeps the WAL bounded (SQLite's checkpoints, synced under NORMAL): 48 MiB through a 16 MiB WAL, every value readable after reopen", async () => {
  const path = join(tempDir(), "kv.db");
  const store = new SqliteStore(path, { preallocateWal: true });
  const value = new Uint8Array(64 * 1024);
  let largest = 0;
  for (let round = 0; round < 24; round++) {
    await Promise.all(Array.from({ length: 32 }, (_, i) => store.write(at(`k${round}-${i}`), value.fill(round))));
    largest = Math.max(largest, statSync(`${path}-wal`).size);
  }
  // Without checkpoints the WAL would hold all 48 MiB.
  expect(largest).toBeLessThan(2 * walBytesAtCheckpoint(SQLITE_PAGE_BYTES, walCheckpointPages(SQLITE_PAGE_BYTES)));
  expect(statSync(path).size).toBeGreaterThan(16 * 1024 * 1024);
  await store.close();
  const reopened = new SqliteStore(path);
  expect((await reopened.read(at("k23-31")))[0]).toBe(23);
  expect(await reopened.list({ primaryNamespace: "monitors", secondaryNamespace: "" })).toHaveLength(24 * 32);
  await reopened.close();
  expect(integrityCheck(path)).toBe("ok");
});

it("keeps the WAL bounded under Txns of 100 scattered keys each", async () => {
  const path = join(tempDir(), "kv.db");
  const store = new SqliteStore(path, { preallocateWal: true });
  const value = new Uint8Array(512).fill(1);
  let largest = 0;
  for (let t = 0; t < 100; t++) {
    // Keys spread over the whole key space, so each operation dirties pages of its own.
    const operations = Array.from({ length: 100 }, (_, i) => ({ ...at(`${((t * 7919 + i * 104729) % 1_000_003).toString(36)}-${t}-${i}`), kind: "write" as const, value }));
    await store.txn({ checks: [], operations });
    largest = Math.max(largest, statSync(`${path}-wal`).size);
  }
  expect(largest).toBeLessThan(2 * walBytesAtCheckpoint(SQLITE_PAGE_BYTES, walCheckpointPages(SQLITE_PAGE_BYTES)));
  await store.close();
});

it("keeps SQLite's own sync for a cache tier (NORMAL) and in memory", async () => {
  const path = join(tempDir(), "cache.db");
  const cache = new SqliteStore(path, { synchronous: "NORMAL" });
  await cache.write(at("a"), bytes("v"));
  expect(text(await cache.read(at("a")))).toBe("v");
  await cache.close();
  const memory = new SqliteStore(":memory:");
  await memory.write(at("a"), bytes("v"));
  expect(text(await memory.read(at("a")))).toBe("v");
  await memory.close();
});
