//! Snapshot files (contract §2.12): a tierkv SQLite store file holding every store of a primary as
//! of one instant. Built from a `SnapshotSource`, streamed in chunks with its SHA-256, and
//! described (keys, value bytes and a digest per store) by `tierkv snapshot status`.

import { createHash } from "node:crypto";
import { createReadStream, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { StoreError } from "./errors.js";
import { SqliteStore } from "./sqlite.js";
import type { DbRecord } from "./db-rows.js";
import type { SnapshotSource, StoredRecord } from "./types.js";

/** Bytes of the file per streamed chunk: well under gRPC's default 4 MiB message limit. */
const SNAPSHOT_CHUNK_BYTES = 256 * 1024;
/** Exact writes in flight while the file is built: they share a group commit. */
const WRITE_BATCH = 256;

export interface SnapshotStoreCount {
  readonly storeId: string;
  readonly keys: number;
  /** Value bytes. */
  readonly bytes: number;
}

export type SnapshotPart =
  | { readonly kind: "chunk"; readonly bytes: Buffer }
  | { readonly kind: "summary"; readonly sha256: string; readonly fileBytes: number; readonly stores: readonly SnapshotStoreCount[] };

/**
 * Writes `records` into a new tierkv SQLite store at `path` with exact writes (values, versions and
 * revisions as they are) and returns the counts per store. The file ends in rollback-journal mode,
 * a single file with no -wal beside it.
 */
export async function writeSnapshotFile(records: AsyncIterable<StoredRecord>, path: string, signal?: AbortSignal): Promise<SnapshotStoreCount[]> {
  const counts = new Map<string, { keys: number; bytes: number }>();
  // No fsync per commit: the file is worth nothing until it is complete, and then closed.
  const store = new SqliteStore(path, { synchronous: "NORMAL" });
  try {
    let batch: Promise<unknown>[] = [];
    for await (const record of records) {
      signal?.throwIfAborted();
      batch.push(store.write(record, record.value, { exact: true, version: record.version, revision: record.revision }));
      let count = counts.get(record.storeId);
      if (count === undefined) counts.set(record.storeId, (count = { keys: 0, bytes: 0 }));
      count.keys++;
      count.bytes += record.value.byteLength;
      if (batch.length >= WRITE_BATCH) {
        await Promise.all(batch);
        batch = [];
      }
    }
    await Promise.all(batch);
  } finally {
    await store.close();
  }
  const db = new Database(path);
  try {
    db.pragma("journal_mode = DELETE");
  } finally {
    db.close();
  }
  return [...counts].map(([storeId, count]) => ({ storeId, ...count }));
}

/**
 * The snapshot of `source` as a stream: the file is built in a private temporary directory, sent
 * in chunks while hashed, then summarised; the directory is removed whatever happens.
 */
export async function* snapshotParts(source: SnapshotSource, signal?: AbortSignal): AsyncGenerator<SnapshotPart> {
  const dir = mkdtempSync(join(tmpdir(), "tierkv-snapshot-"));
  try {
    const path = join(dir, "snapshot.db");
    const stores = await writeSnapshotFile(source.snapshotRecords(signal), path, signal);
    const hash = createHash("sha256");
    for await (const chunk of createReadStream(path, { highWaterMark: SNAPSHOT_CHUNK_BYTES, signal })) {
      hash.update(chunk as Buffer);
      yield { kind: "chunk", bytes: chunk as Buffer };
    }
    yield { kind: "summary", sha256: hash.digest("hex"), fileBytes: statSync(path).size, stores };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface SnapshotStoreStatus extends SnapshotStoreCount {
  /** Hex SHA-256 over the store's records (see `recordBytes`). */
  readonly digest: string;
}

export interface SnapshotStatus {
  readonly fileBytes: number;
  /** Hex SHA-256 of the file. */
  readonly sha256: string;
  readonly stores: readonly SnapshotStoreStatus[];
}

/**
 * One record as the store digest hashes it: primary namespace, secondary namespace and key (UTF-8,
 * each after its length as a 32-bit big-endian integer), version and revision (64-bit big-endian),
 * then the value after its length (64-bit big-endian).
 */
function recordBytes(record: Pick<StoredRecord, "primaryNamespace" | "secondaryNamespace" | "key" | "value" | "version" | "revision">): Buffer[] {
  const text = (s: string): Buffer[] => {
    const bytes = Buffer.from(s, "utf8");
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    return [length, bytes];
  };
  const numbers = Buffer.alloc(24);
  numbers.writeBigUInt64BE(record.version, 0);
  numbers.writeBigUInt64BE(record.revision, 8);
  numbers.writeBigUInt64BE(BigInt(record.value.byteLength), 16);
  return [...text(record.primaryNamespace), ...text(record.secondaryNamespace), ...text(record.key), numbers, Buffer.from(record.value)];
}

/**
 * Reads a snapshot file (read-only; never changed): its size and SHA-256, and per store the keys,
 * value bytes and digest — a SHA-256 over the store's records in (primary namespace, secondary
 * namespace, key) order of their UTF-8 bytes. Throws `invalid-argument` for a file that is not a
 * tierkv SQLite store.
 */
export async function snapshotStatus(path: string): Promise<SnapshotStatus> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  const sha256 = hash.digest("hex");
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw new StoreError("invalid-argument", "the file cannot be opened as a SQLite database", { cause: error });
  }
  try {
    let rows: IterableIterator<DbRecord>;
    try {
      // SQLite's BINARY collation compares TEXT as UTF-8 bytes: the digest's order.
      rows = db
        .prepare<[], DbRecord>(
          "SELECT store_id, primary_namespace, secondary_namespace, key, value, version, revision FROM kv ORDER BY store_id, primary_namespace, secondary_namespace, key",
        )
        .safeIntegers(true)
        .iterate();
    } catch (error) {
      throw new StoreError("invalid-argument", "the file is not a tierkv snapshot (a tierkv SQLite store)", { cause: error });
    }
    const stores: SnapshotStoreStatus[] = [];
    let current: { storeId: string; keys: number; bytes: number; hash: ReturnType<typeof createHash> } | undefined;
    const finish = (): void => {
      if (current !== undefined) stores.push({ storeId: current.storeId, keys: current.keys, bytes: current.bytes, digest: current.hash.digest("hex") });
    };
    for (const row of rows) {
      if (current?.storeId !== row.store_id) {
        finish();
        current = { storeId: row.store_id, keys: 0, bytes: 0, hash: createHash("sha256") };
      }
      current.keys++;
      current.bytes += row.value.byteLength;
      const record = { primaryNamespace: row.primary_namespace, secondaryNamespace: row.secondary_namespace, key: row.key, value: row.value, version: row.version, revision: row.revision };
      for (const part of recordBytes(record)) current.hash.update(part);
    }
    finish();
    return { fileBytes: statSync(path).size, sha256, stores };
  } finally {
    db.close();
  }
}
