//! The rows the SQL backends (sqlite, postgres) and snapshot files read a key from, and their
//! conversion to the store contract's types: one shape for every table keyed by
//! (store_id, primary_namespace, secondary_namespace, key).

import type { Change, KeyVersion, StoredRecord } from "./types.js";

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

/** A change-log row (sqlite's `changes`, postgres's `tierkv_changes`); `kind` 0 is a put, 1 a remove. */
export interface DbChange extends DbKeyVersion {
  seq: bigint;
  kind: bigint | number;
  size: bigint | number;
  value: Buffer | null;
  committed_at: bigint | number;
}

export const CHANGE_KIND_PUT = 0;
export const CHANGE_KIND_REMOVE = 1;

/** A change row; with `values`, a put whose value the key no longer holds is `superseded`. */
export function toChange(row: DbChange, values: boolean): Change {
  const put = Number(row.kind) !== CHANGE_KIND_REMOVE;
  return {
    ...toKeyVersion(row),
    seq: row.seq,
    kind: put ? "put" : "remove",
    size: Number(row.size),
    ...(values && put && (row.value === null ? { superseded: true } : { value: row.value })),
    time: Number(row.committed_at),
  };
}
