//! The PostgreSQL backend's statements (prepared once per connection), row shapes and the
//! parameters a key or namespace becomes.

import pg from "pg";
import { storeIdOf, type GroupUsage, type KeyRef, type NamespaceRef, type StoreUsage } from "./types.js";

const PK = "store_id = $1 AND primary_namespace = $2 AND secondary_namespace = $3 AND key = $4";
const NS = "store_id = $1 AND primary_namespace = $2 AND secondary_namespace = $3";
const ALL_KEYS_COLUMNS = "store_id, primary_namespace, secondary_namespace, key, version, revision";

// The writes, without their RETURNING (each has a plain and a logged form in SQL below).
// One write: applied when the stored version is below the mutation's (or it has none). The
// revision given, or 1 on creation and +1 per write; an unversioned write keeps the stored
// version. A plain write ($8) always applies, at its version or past the stored one.
const WRITE = `INSERT INTO tierkv_kv AS kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
  VALUES ($1, $2, $3, $4, $5, coalesce($6::bigint, 0), coalesce($7::bigint, 1))
  ON CONFLICT (store_id, primary_namespace, secondary_namespace, key) DO UPDATE
    SET value = excluded.value,
        version = CASE WHEN $8::boolean AND kv.version >= $6::bigint THEN kv.version + 1 ELSE coalesce($6::bigint, kv.version) END,
        revision = coalesce($7::bigint, kv.revision + 1)
    WHERE $8::boolean OR $6::bigint IS NULL OR kv.version < $6::bigint`;
// A group-commit batch of versioned writes to distinct keys in one statement (rows in the
// batch's key order, the lock order); `write`'s rules with a version always given. Returns the
// keys applied; the others were stale.
const WRITE_MANY = `INSERT INTO tierkv_kv AS kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
  SELECT s, p, q, k, v, ver, 1 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bigint[]) AS t(s, p, q, k, v, ver)
  ON CONFLICT (store_id, primary_namespace, secondary_namespace, key) DO UPDATE
      SET value = excluded.value, version = excluded.version, revision = kv.revision + 1
    WHERE kv.version < excluded.version`;
// The same for plain writes: every row applies, at its version or past the stored one.
const WRITE_MANY_PLAIN = `INSERT INTO tierkv_kv AS kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
  SELECT s, p, q, k, v, ver, 1 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bigint[]) AS t(s, p, q, k, v, ver)
  ON CONFLICT (store_id, primary_namespace, secondary_namespace, key) DO UPDATE
    SET value = excluded.value,
        version = CASE WHEN kv.version >= excluded.version THEN kv.version + 1 ELSE excluded.version END,
        revision = kv.revision + 1`;
// The same with the revisions given (the primary's, mirrored to a backup).
const WRITE_MANY_REVISIONS = `INSERT INTO tierkv_kv AS kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
  SELECT s, p, q, k, v, ver, rev FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bigint[], $7::bigint[]) AS t(s, p, q, k, v, ver, rev)
  ON CONFLICT (store_id, primary_namespace, secondary_namespace, key) DO UPDATE
    SET value = excluded.value, version = excluded.version, revision = excluded.revision
    WHERE kv.version < excluded.version`;
const CHANGED_COLUMNS = "store_id, primary_namespace, secondary_namespace, key, version, revision";

// -- the change log (see postgres.ts, "Change log") --------------------------------------------

/** The database's clock in ms: instances whose own clocks disagree still log one time line. */
const NOW_MS = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
/** The same clock once per statement (pruning's "now"). */
const STATEMENT_MS = "(extract(epoch from statement_timestamp()) * 1000)::bigint";
const CHANGE_COLUMNS = "store_id, seq, primary_namespace, secondary_namespace, key, kind, version, revision, size, committed_at";

/**
 * Raises stores' last sequences by the counts `rows` gives (store_id, 0, 0, count), in store order
 * (the usage rows' lock order), and returns each store's new last sequence. The row locks, held
 * until COMMIT, make the store's next transaction number its changes after this one's.
 */
function raiseSequences(rows: string): string {
  return `INSERT INTO tierkv_usage AS u (store_id, keys, bytes, seq) ${rows}
    ON CONFLICT (store_id) DO UPDATE SET seq = u.seq + excluded.seq
    RETURNING store_id, seq`;
}

/**
 * `upsert` (into tierkv_kv, distinct keys) with a put logged for each row it changed, in one
 * statement: for a statement committed alone.
 */
function putsLogged(upsert: string): string {
  return `WITH changed AS (${upsert} RETURNING ${CHANGED_COLUMNS}, octet_length(value) AS size),
    raised AS (${raiseSequences("SELECT store_id, 0, 0, count(*) FROM changed GROUP BY store_id ORDER BY store_id")}),
    logged AS (
      INSERT INTO tierkv_changes (${CHANGE_COLUMNS})
      SELECT c.store_id, r.seq - count(*) OVER store + row_number() OVER store,
             c.primary_namespace, c.secondary_namespace, c.key, 0, c.version, c.revision, c.size, ${NOW_MS}
      FROM changed c JOIN raised r ON r.store_id = c.store_id
      WINDOW store AS (PARTITION BY c.store_id ORDER BY c.primary_namespace, c.secondary_namespace, c.key
                       ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING))
    SELECT ${CHANGED_COLUMNS} FROM changed`;
}

export const SQL = {
  read: `SELECT value, version, revision FROM tierkv_kv WHERE ${PK}`,
  // Returns the version and revision stored; no row: stale.
  write: `${WRITE} RETURNING version, revision`,
  // The same committed alone (no BEGIN), with its change logged in the statement.
  writeLogged: putsLogged(WRITE),
  writeExact: `INSERT INTO tierkv_kv AS kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (store_id, primary_namespace, secondary_namespace, key) DO UPDATE
                 SET value = excluded.value, version = excluded.version, revision = excluded.revision
               RETURNING revision`,
  writeMany: `${WRITE_MANY} RETURNING ${CHANGED_COLUMNS}`,
  writeManyPlain: `${WRITE_MANY_PLAIN} RETURNING ${CHANGED_COLUMNS}`,
  writeManyRevisions: `${WRITE_MANY_REVISIONS} RETURNING ${CHANGED_COLUMNS}`,
  // The same committed alone (no BEGIN), with their changes logged in the statement.
  writeManyLogged: putsLogged(WRITE_MANY),
  writeManyPlainLogged: putsLogged(WRITE_MANY_PLAIN),
  writeManyRevisionsLogged: putsLogged(WRITE_MANY_REVISIONS),
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
  // A transaction's changes (Tx.finish): $1/$2 each store it changed with its count (0 for a store
  // whose usage row the triggers touch without a change: locked in order with the others); then
  // one row per change, numbered from its store's new last sequence back (`later`: how many of the
  // store's changes follow it).
  logChanges: `WITH raised AS (${raiseSequences(`SELECT s, 0, 0, n FROM unnest($1::text[], $2::bigint[]) AS t(s, n) ORDER BY s COLLATE "C"`)})
    INSERT INTO tierkv_changes (${CHANGE_COLUMNS})
    SELECT c.s, r.seq - c.later, c.p, c.q, c.k, c.kind, c.ver, c.rev, c.size, ${NOW_MS}
    FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::smallint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[])
      AS c(s, p, q, k, kind, ver, rev, size, later)
    JOIN raised r ON r.store_id = c.s`,
  // A store's changes from $2 on ($3 at most; with values ($4), none after the one that takes the
  // page to $5 bytes) and its bounds, in one statement: one snapshot, so they agree. Always one
  // row at least (the bounds, with NULL change columns when there is no change). The log keeps no
  // values: with $4, a put's is its key's while the key still holds that put (same version and
  // revision), else NULL (superseded).
  changes: `WITH page AS (
      SELECT *, coalesce(sum(size) OVER (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
      FROM (SELECT seq, primary_namespace, secondary_namespace, key, kind, version, revision, size, committed_at
            FROM tierkv_changes WHERE store_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3) limited)
    SELECT coalesce(u.seq, 0) AS latest,
           coalesce((SELECT min(seq) FROM tierkv_changes WHERE store_id = $1), coalesce(u.seq, 0) + 1) AS oldest,
           $1::text AS store_id, p.seq, p.primary_namespace, p.secondary_namespace, p.key, p.kind, p.version, p.revision, p.size,
           kv.value, p.committed_at
    FROM (VALUES (1)) AS one
      LEFT JOIN tierkv_usage u ON u.store_id = $1
      LEFT JOIN page p ON NOT $4::boolean OR $5::bigint IS NULL OR p.before < $5::bigint
      LEFT JOIN tierkv_kv kv ON $4::boolean AND p.kind = 0 AND kv.store_id = $1 AND kv.primary_namespace = p.primary_namespace
        AND kv.secondary_namespace = p.secondary_namespace AND kv.key = p.key AND kv.version = p.version AND kv.revision = p.revision
    ORDER BY p.seq`,
  heads: `SELECT store_id, seq FROM tierkv_usage WHERE seq > 0`,
  // Deletes at most $4 changes: per store, those past the newest $1 (maxCount) and those committed
  // before $3 (now; the database's clock when NULL) minus $2 (maxAgeMs). A store loses only its
  // oldest (a prefix, so its log stays gap-free): the age bound stops at its first young change,
  // read from its oldest on (commit times grow with sequences), so only what goes is read. Across
  // stores, oldest first (by the running maximum of commit times, which keeps each prefix whole).
  prune: `WITH bounds AS (
      SELECT u.store_id, greatest(u.seq - $1::bigint, CASE WHEN $2::bigint IS NOT NULL THEN
               coalesce((SELECT c.seq - 1 FROM tierkv_changes c
                         WHERE c.store_id = u.store_id AND c.committed_at >= coalesce($3::bigint, ${STATEMENT_MS}) - $2::bigint
                         ORDER BY c.seq LIMIT 1), u.seq) END) AS upto
      FROM tierkv_usage u WHERE u.seq > 0),
    doomed AS (
      SELECT c.store_id, c.seq FROM bounds b CROSS JOIN LATERAL (
          SELECT store_id, seq, committed_at FROM tierkv_changes c WHERE c.store_id = b.store_id AND c.seq <= b.upto ORDER BY c.seq LIMIT $4) c
      ORDER BY max(c.committed_at) OVER (PARTITION BY c.store_id ORDER BY c.seq), c.store_id, c.seq
      LIMIT $4),
    pruned AS (DELETE FROM tierkv_changes c USING doomed d WHERE c.store_id = d.store_id AND c.seq = d.seq RETURNING 1)
    SELECT count(*) AS n FROM pruned`,
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

