//! The rows the SQL backends (sqlite, postgres) and snapshot files read a key from, and their
//! conversion to the store contract's types: one shape for every table keyed by
//! (store_id, primary_namespace, secondary_namespace, key).

import type { KeyVersion, StoredRecord } from "./types.js";

export interface DbKey {
  store_id: string;
  primary_namespace: string;
  secondary_namespace: string;
  key: string;
}

export interface DbKeyVersion extends DbKey {
  version: bigint;
  revision: bigint;
}

/** A whole stored key: what a copy (snapshot, migration) reads. */
export interface DbRecord extends DbKeyVersion {
  value: Buffer;
}

export function toKeyVersion(row: DbKeyVersion): KeyVersion {
  return {
    storeId: row.store_id,
    primaryNamespace: row.primary_namespace,
    secondaryNamespace: row.secondary_namespace,
    key: row.key,
    version: row.version,
    revision: row.revision,
  };
}

export function toStoredRecord(row: DbRecord): StoredRecord {
  return { ...toKeyVersion(row), value: row.value };
}
