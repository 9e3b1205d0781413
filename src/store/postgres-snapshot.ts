//! Snapshots of a PostgreSQL store (`SnapshotSource`), apart from postgres.ts: one REPEATABLE
//! READ, READ ONLY transaction sees the database as of its first statement while other
//! transactions (any instance's) go on committing; its rows are read in keyset pages inside it.

import type pg from "pg";
import { postgresStoreError } from "./postgres-errors.js";
import { toStoredRecord, type DbRecord } from "./db-rows.js";
import type { StoredRecord } from "./types.js";

/** Rows per statement: bounds the memory a page of large values takes. */
const PAGE_ROWS = 256;

const PAGE = `SELECT store_id, primary_namespace, secondary_namespace, key, value, version, revision FROM tierkv_kv
  WHERE (store_id, primary_namespace, secondary_namespace, key) > ($1, $2, $3, $4)
  ORDER BY store_id, primary_namespace, secondary_namespace, key LIMIT $5`;

/** Every record of `pool`'s database from one transaction, in primary-key order. */
export async function* postgresSnapshotRecords(pool: pg.Pool, signal?: AbortSignal): AsyncGenerator<StoredRecord> {
  const run = async <R extends pg.QueryResultRow>(work: () => Promise<pg.QueryResult<R>>): Promise<R[]> => {
    try {
      return (await work()).rows;
    } catch (error) {
      throw postgresStoreError(error);
    }
  };
  let client: pg.PoolClient | undefined;
  let finished = false;
  try {
    client = await pool.connect().catch((error: unknown) => {
      throw postgresStoreError(error);
    });
    const connection = client;
    await run(() => connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    let after = ["", "", "", ""];
    for (;;) {
      signal?.throwIfAborted();
      const rows = await run(() => connection.query<DbRecord>(PAGE, [...after, PAGE_ROWS]));
      yield* rows.map(toStoredRecord);
      const last = rows.at(-1);
      if (rows.length < PAGE_ROWS || last === undefined) break;
      after = [last.store_id, last.primary_namespace, last.secondary_namespace, last.key];
    }
    await run(() => connection.query("COMMIT"));
    finished = true;
  } finally {
    // A snapshot stopped half-way leaves its transaction open: the connection is dropped, not pooled.
    client?.release(!finished);
  }
}
