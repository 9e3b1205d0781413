//! Reads a tierkv SQLite file directly, for comparing tiers after a test.

import Database from "better-sqlite3";

export interface Row {
  primary_namespace: string;
  secondary_namespace: string;
  key: string;
  value: Buffer;
  version: number | bigint;
}

/** Opens `path` read-only, runs `read`, closes. Integers come back as bigint. */
function readDatabase<T>(path: string, read: (db: Database.Database) => T): T {
  const db = new Database(path, { readonly: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

/** The default store's rows, ordered by address (creation order left out: it differs per tier). */
export function storedRows(path: string): Row[] {
  return readDatabase(path, (db) =>
    db
      .prepare<[], Row>(
        `SELECT primary_namespace, secondary_namespace, key, value, version FROM kv WHERE store_id = 'default'
         ORDER BY primary_namespace, secondary_namespace, key`,
      )
      .safeIntegers(true)
      .all(),
  );
}

/** `path → value as text` of the default store, for readable comparisons. */
export function storedValues(path: string): Map<string, string> {
  return new Map(
    storedRows(path).map((r) => [`${r.primary_namespace}/${r.secondary_namespace}/${r.key}`, r.value.toString()]),
  );
}

export interface FullRow extends Row {
  store_id: string;
  version: bigint;
  revision: bigint;
}

/** Every store's rows with store id and revision (schema version 2), ordered by address. */
export function allStoredRows(path: string): FullRow[] {
  return readDatabase(path, (db) =>
    db
      .prepare<[], FullRow>(
        `SELECT store_id, primary_namespace, secondary_namespace, key, value, version, revision FROM kv
         ORDER BY store_id, primary_namespace, secondary_namespace, key`,
      )
      .safeIntegers(true)
      .all(),
  );
}

export interface OwedRow {
  store_id: string;
  primary_namespace: string;
  secondary_namespace: string;
  key: string;
  version: bigint;
}

/** The backup ledger's rows (schema version 2), ordered by address. */
export function owedRows(path: string): OwedRow[] {
  return readDatabase(path, (db) =>
    db
      .prepare<[], OwedRow>(
        `SELECT store_id, primary_namespace, secondary_namespace, key, version FROM owed
         ORDER BY store_id, primary_namespace, secondary_namespace, key`,
      )
      .safeIntegers(true)
      .all(),
  );
}

/** The persisted clock's high-water mark (schema version 2). */
export function clockHighest(path: string): bigint {
  return readDatabase(path, (db) => db.prepare<[], bigint>(`SELECT highest_version FROM clock`).pluck().safeIntegers(true).get() ?? 0n);
}

/** SQLite's own verdict on the file: "ok", or what `PRAGMA integrity_check` found wrong. */
export function integrityCheck(path: string): unknown {
  return readDatabase(path, (db) => db.pragma("integrity_check", { simple: true }));
}
