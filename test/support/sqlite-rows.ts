//! Reads a tierkv SQLite file directly, for comparing tiers after a test.

import Database from "better-sqlite3";

export interface Row {
  primary_namespace: string;
  secondary_namespace: string;
  key: string;
  value: Buffer;
  version: number | bigint;
}

/** The default store's rows, ordered by address (creation order left out: it differs per tier). */
export function storedRows(path: string): Row[] {
  const db = new Database(path, { readonly: true });
  try {
    return db
      .prepare<[], Row>(
        `SELECT primary_namespace, secondary_namespace, key, value, version FROM kv WHERE store_id = 'default'
         ORDER BY primary_namespace, secondary_namespace, key`,
      )
      .safeIntegers(true)
      .all();
  } finally {
    db.close();
  }
}

/** `path → value as text` of the default store, for readable comparisons. */
export function storedValues(path: string): Map<string, string> {
  return new Map(
    storedRows(path).map((r) => [`${r.primary_namespace}/${r.secondary_namespace}/${r.key}`, r.value.toString()]),
  );
}
