// Preallocating SQLite's WAL (src/store/sqlite-wal.ts): the file reaches its checkpoint size at
// open, frames another connection already wrote are kept, and nothing is lost across reopen.
import { statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { walBytesAtCheckpoint } from "../../src/store/sqlite-wal.js";
import { SQLITE_PAGE_BYTES, SqliteStore, walCheckpointPages } from "../../src/store/sqlite.js";
import type { KeyRef } from "../../src/store/types.js";
import { integrityCheck } from "../support/sqlite-rows.js";
import { text } from "../support/store-assertions.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

afterEach(() => removeTempDirs());

const at = (key: string): KeyRef => ({ primaryNamespace: "monitors", secondaryNamespace: "", key });
const bytes = (value: string): Uint8Array => new TextEncoder().encode(value);
const CHECKPOINT_BYTES = walBytesAtCheckpoint(SQLITE_PAGE_BYTES, walCheckpointPages(SQLITE_PAGE_BYTES));

it("extends the WAL to its checkpoint size, keeping the frames another connection wrote", async () => {
  const path = join(tempDir(), "kv.db");
  const first = new SqliteStore(path);
  for (let i = 0; i < 50; i++) await first.write(at(`k${i}`), bytes(`v${i}`));
  const framesBefore = statSync(`${path}-wal`).size;
  expect(framesBefore).toBeGreaterThan(0);
  expect(framesBefore).toBeLessThan(CHECKPOINT_BYTES);

  // A second connection (as a second process would) preallocates while the first holds frames
  // that are not checkpointed yet.
  const second = new SqliteStore(path, { preallocateWal: true });
  expect(statSync(`${path}-wal`).size).toBe(CHECKPOINT_BYTES);
  for (let i = 50; i < 100; i++) await second.write(at(`k${i}`), bytes(`v${i}`));
  for (const store of [first, second]) {
    expect(text(await store.read(at("k0")))).toBe("v0");
    expect(text(await store.read(at("k99")))).toBe("v99");
  }
  await first.close();
  await second.close();

  const reopened = new SqliteStore(path, { preallocateWal: true });
  expect(await reopened.list({ primaryNamespace: "monitors", secondaryNamespace: "" })).toHaveLength(100);
  await reopened.close();
  expect(integrityCheck(path)).toBe("ok");
});

it("leaves a WAL that is already larger alone, and a store without the option never extends it", async () => {
  const path = join(tempDir(), "kv.db");
  const plain = new SqliteStore(path);
  await plain.write(at("k"), bytes("v"));
  expect(statSync(`${path}-wal`).size).toBeLessThan(CHECKPOINT_BYTES);
  // Grow the WAL past the target with one large transaction.
  await Promise.all(Array.from({ length: 40 }, (_, i) => plain.write(at(`big${i}`), new Uint8Array(512 * 1024).fill(i))));
  const grown = statSync(`${path}-wal`).size;
  expect(grown).toBeGreaterThan(CHECKPOINT_BYTES);
  const preallocating = new SqliteStore(path, { preallocateWal: true });
  expect(statSync(`${path}-wal`).size).toBe(grown);
  expect(text(await preallocating.read(at("k")))).toBe("v");
  await preallocating.close();
  await plain.close();
});
