//! The PostgreSQL backend's statements (prepared once per connection), row shapes and the
//! parameters a key or namespace becomes.

import pg from "pg";
import { storeIdOf, type GroupUsage, type KeyRef, type NamespaceRef, type StoreUsage } from "./types.js";

const PK = "store_id = $1 AND primary_namespace = $2 AND secondary_namespace = $3 AND key = $4";
const NS = "store_id = $1 AND primary_namespace = $2 AND secondary_namespace = $3";
const ALL_KEYS_COLUMNS = "store_id, primary_namespace, secondary_namespace, key, version, revision";

export const SQL = {
  read: `SELECT value, version, revision FROM tierkv_kv WHERE ${PK}`,
  // Applied when the stored version is below the mutation's (or it has none): no row returned
  // means stale. The revision given, or 1 on creation and +1 per write; an unversioned write
  // keeps the stored version.
  // A plain write ($8) always applies, at its version or past the stored one. Returns the version
  // stored.
  write: `INSERT INTO tierkv_kv AS kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
          VALUES ($1, $2, $3, $4, $5, coalesce($6::bigint, 0), coalesce($7::bigint, 1))
          ON CONFLICT (store_id, primary_namespace, secondary_namespace, key) DO UPDATE
            SET value = excluded.value,
                version = CASE WHEN $8::boolean AND kv.version >= $6::bigint THEN kv.version + 1 ELSE coalesce($6::bigint, kv.version) END,
                revision = coalesce($7::bigint, kv.revision + 1)
            WHERE $8::boolean OR $6::bigint IS NULL OR kv.version < $6::bigint
          RETURNING version`,
  writeExact: `INSERT INTO tierkv_kv AS kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (store_id, primary_namespace, secondary_namespace, key) DO UPDATE
                 SET value = excluded.value, version = excluded.version, revision = excluded.revision
               RETURNING revision`,
  // A group-commit batch of versioned writes to distinct keys in one statement (rows in the
  // batch's key order, the lock order); `write`'s rules with a version always given. Returns the
  // keys applied; the others were stale.
  writeMany: `INSERT INTO tierkv_kv AS kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
              SELECT s, p, q, k, v, ver, 1 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bigint[]) AS t(s, p, q, k, v, ver)
              ON CONFLICT (store_id, primary_namespace, secondary_namespace, key) DO UPDATE
                  SET value = excluded.value, version = excluded.version, revision = kv.revision + 1
                WHERE kv.version < excluded.version
              RETURNING store_id, primary_namespace, secondary_namespace, key, version`,
  // The same for plain writes: every row applies, at its version or past the stored one.
  writeManyPlain: `INSERT INTO tierkv_kv AS kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
                   SELECT s, p, q, k, v, ver, 1 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bigint[]) AS t(s, p, q, k, v, ver)
                   ON CONFLICT (store_id, primary_namespace, secondary_namespace, key) DO UPDATE
                     SET value = excluded.value,
                         version = CASE WHEN kv.version >= excluded.version THEN kv.version + 1 ELSE excluded.version END,
                         revision = kv.revision + 1
                   RETURNING store_id, primary_namespace, secondary_namespace, key, version`,
  // The same with the revisions given (the primary's, mirrored to a backup).
  writeManyRevisions: `INSERT INTO tierkv_kv AS kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
                       SELECT s, p, q, k, v, ver, rev FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bigint[], $7::bigint[]) AS t(s, p, q, k, v, ver, rev)
                       ON CONFLICT (store_id, primary_namespace, secondary_namespace, key) DO UPDATE
                         SET value = excluded.value, version = excluded.version, revision = excluded.revision
                         WHERE kv.version < excluded.version
                       RETURNING store_id, primary_namespace, secondary_namespace, key, version`,
  // A plain remove ($6) always applies; `applied` is the version it removed at: its own, or past
  // the removed one for a plain remove (meaningless for an unversioned one).
  remove: `DELETE FROM tierkv_kv WHERE ${PK} AND ($5::bigint IS NULL OR $6::boolean OR version < $5::bigint)
           RETURNING version, greatest($5::bigint, version + 1) AS applied`,
  version: `SELECT version FROM tierkv_kv WHERE ${PK}`,
  state: `SELECT version, revision FROM tierkv_kv WHERE ${PK}`,
  lock: `SELECT version, revision, octet_length(value) AS size FROM tierkv_kv WHERE ${PK} FOR UPDATE`,
  placeholder: `INSERT INTO tierkv_kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
                VALUES ($1, $2, $3, $4, '', 0, 0) ON CONFLICT DO NOTHING RETURNING seq`,
  update: `UPDATE tierkv_kv SET value = $5, version = $6, revision = $7 WHERE ${PK}`,
  delete: `DELETE FROM tierkv_kv WHERE ${PK}`,
  list: `SELECT key FROM tierkv_kv WHERE ${NS} LIMIT $4`,
  page: `SELECT key, seq FROM tierkv_kv WHERE ${NS} AND seq < $4 ORDER BY seq DESC LIMIT $5`,
  allKeysOfStore: `SELECT ${ALL_KEYS_COLUMNS} FROM tierkv_kv
                   WHERE store_id = $1 AND (primary_namespace, secondary_namespace, key) > ($2, $3, $4)
                   ORDER BY store_id, primary_namespace, secondary_namespace, key LIMIT $5`,
  allKeysOfAllStores: `SELECT ${ALL_KEYS_COLUMNS} FROM tierkv_kv
                       WHERE (store_id, primary_namespace, secondary_namespace, key) > ($1, $2, $3, $4)
                       ORDER BY store_id, primary_namespace, secondary_namespace, key LIMIT $5`,
  recordOwed: `INSERT INTO tierkv_owed AS owed (store_id, primary_namespace, secondary_namespace, key, version)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (store_id, primary_namespace, secondary_namespace, key) DO UPDATE
                 SET version = greatest(owed.version, excluded.version)`,
  settleOwed: `DELETE FROM tierkv_owed WHERE ${PK} AND version <= $5`,
  listOwed: `SELECT store_id, primary_namespace, secondary_namespace, key, version, 0::bigint AS revision FROM tierkv_owed
             WHERE (store_id, primary_namespace, secondary_namespace, key) > ($1, $2, $3, $4)
             ORDER BY store_id, primary_namespace, secondary_namespace, key LIMIT $5`,
  countOwed: `SELECT count(*) AS n FROM tierkv_owed`,
  usage: `SELECT keys, bytes FROM tierkv_usage WHERE store_id = $1`,
  usageOf: `SELECT store_id, keys, bytes FROM tierkv_usage WHERE store_id = ANY($1::text[])`,
  // A usage group's records: a range of the usage table's key (usage-group.ts).
  groupUsage: `SELECT coalesce(sum(keys), 0)::bigint AS keys, coalesce(sum(bytes), 0)::bigint AS bytes, count(*) FILTER (WHERE keys > 0) AS stores
               FROM tierkv_usage WHERE store_id >= $1 AND store_id < $2`,
  // Quota'd transactions of one usage group queue here ($1: tierkv's class of these locks, $2: the group's key).
  lockGroup: `SELECT pg_advisory_xact_lock($1::int4, $2::int4)`,
  // recountUsage: the record locked (created when absent) first, so no commit changes it meanwhile.
  createUsage: `INSERT INTO tierkv_usage (store_id, keys, bytes) VALUES ($1, 0, 0) ON CONFLICT DO NOTHING`,
  lockUsage: `SELECT keys, bytes FROM tierkv_usage WHERE store_id = $1 FOR UPDATE`,
  countUsage: `SELECT count(*) AS keys, coalesce(sum(octet_length(value)), 0) AS bytes FROM tierkv_kv WHERE store_id = $1`,
  setUsage: `UPDATE tierkv_usage SET keys = $2, bytes = $3 WHERE store_id = $1`,
  raiseClock: `UPDATE tierkv_clock SET highest_version = $1 WHERE highest_version < $1`,
  highest: `SELECT greatest((SELECT max(version) FROM tierkv_kv), (SELECT highest_version FROM tierkv_clock)) AS v`,
} as const;

/** Statements are prepared once per connection under their name. */
export function statement(name: keyof typeof SQL, values: readonly unknown[]): pg.QueryConfig {
  return { name: `tierkv_${name}`, text: SQL[name], values: values as unknown[] };
}

/** int8 columns arrive as bigint (versions exceed 2^53); everything else as node-postgres parses it. */
export const TYPES = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === pg.types.builtins.INT8 ? (text: string) => BigInt(text) : pg.types.getTypeParser(oid, format ?? "text")) as typeof pg.types.getTypeParser,
};

type KeyParams = [string, string, string, string];

export function keyParams(ref: KeyRef): KeyParams {
  return [storeIdOf(ref), ref.primaryNamespace, ref.secondaryNamespace, ref.key];
}

export function namespaceParams(ns: NamespaceRef): [string, string, string] {
  return [storeIdOf(ns), ns.primaryNamespace, ns.secondaryNamespace];
}

/** A key's identity and position in the global lock order (NUL never appears in a valid name). */
export function keyId(ref: KeyRef): string {
  return keyParams(ref).join("\0");
}

export function byId<T extends { readonly id: string }>(a: T, b: T): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export interface DbUsage {
  keys: bigint;
  bytes: bigint;
}

export function usageOf(row: DbUsage | undefined): StoreUsage {
  return { keys: Number(row?.keys ?? 0n), bytes: Number(row?.bytes ?? 0n) };
}

export interface DbGroupUsage extends DbUsage {
  stores: bigint;
}

export function groupUsageOf(row: DbGroupUsage | undefined): GroupUsage {
  return { ...usageOf(row), stores: Number(row?.stores ?? 0n) };
}

