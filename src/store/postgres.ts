//! The PostgreSQL backend (node-postgres): one database shared by several tierkv instances.
//!
//! URI: `postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=…&sslrootcert=FILE&pool_max=N`
//! (`postgresql://` too); see `parsePostgresUri` for every parameter.
//!
//! Schema (versioned in `tierkv_migrations`, migrated on open inside one transaction under an
//! advisory lock, so instances opening at once never race; a newer schema is refused):
//! - `tierkv_kv`, keyed by (store_id, primary_namespace, secondary_namespace, key), all `COLLATE
//!   "C"` so the primary key's order is `compareKeys`'s (`listAllKeys` walks that index); `seq`
//!   (a sequence, set on creation and kept by overwrites) with an index on (store_id, primary,
//!   secondary, seq) gives the newest-created-first `listPage`.
//! - `tierkv_owed`: the backup ledger (`BackupLedger`), written in the mutation's own transaction.
//! - `tierkv_usage`: each store's keys and value bytes (`StoreUsageReader`, quotas), kept by
//!   triggers on `tierkv_kv` (below); read in O(1), never counted from the data except by
//!   `recountUsage`.
//! - The clock's high-water mark (`highestVersion`) is `max(version)` over an index on
//!   `tierkv_kv.version` (one index probe, no scan), or `tierkv_clock`, a one-row table that
//!   only removes and exact writes raise: they take a version out of the index (the removed or
//!   overwritten one, and a remove's own).
//!   Why not a one-row table raised by every commit, as SQLite does: with several instances every
//!   writing transaction would queue on that one row lock until the previous one committed (its
//!   fsync included), serialising all writers of the database. The version index costs one
//!   index entry per write instead, and removes, which are rarer, take the row lock last.
//!
//! Several instances, one database: every single mutation is decided by the database in one
//! statement (`INSERT … ON CONFLICT DO UPDATE … WHERE stored.version < excluded.version`,
//! `DELETE … WHERE version < $v`), so there is no read-then-write race. A plain mutation (no
//! caller version: its version is only a proposal) is decided the same way: the upsert stores
//! `CASE WHEN stored >= $v THEN stored + 1 ELSE $v END` with no WHERE, the remove deletes
//! unconditionally and returns `greatest($v, removed + 1)`, and `RETURNING version` gives the
//! version `onVersion` reports once the commit succeeded. So another instance's clock being far
//! behind never makes a plain mutation stale. A Txn runs alone in a
//! READ COMMITTED transaction that first locks every key it checks or writes in one global order
//! (`SELECT … FOR UPDATE` for a present key; for an absent key, a placeholder row inserted and
//! deleted again before commit, whose uncommitted index entry makes every other writer of that
//! key wait), then decides with the rules of `mutation-rules.ts` on the locked state: two
//! instances' conflicting transactions are serialised and a failed check rolls everything back.
//!
//! Usage: the database decides it, for every statement of every instance (an older tierkv still
//! running on schema 1 included): row triggers on `tierkv_kv` add the exact OLD/NEW difference
//! (+1/−1 key on INSERT/DELETE, the size difference on an UPDATE that changes it; a same-size
//! overwrite does not even queue an event) to the store's `tierkv_usage` row in the transaction
//! that makes the change, so the multi-row batch, exact copies and the Txn's placeholders (an
//! empty row inserted and deleted again: +1 then −1, never below the committed count) need no
//! old sizes read by the app. The triggers are DEFERRABLE INITIALLY DEFERRED: they run at COMMIT,
//! so a store's usage row is locked only for the commit itself, after every other lock of the
//! transaction, instead of from the first row on (which would serialise all of a store's writers
//! for the whole transaction and break the lock order below). Rows with keys = 0 stay; harmless.
//! Measured (1,000 writes of 100 bytes, same run, with and without the triggers, busy 2-core VM,
//! data dir in memory): one at a time about even (~1,100–2,300/s either way); 1,000 concurrent
//! (multi-row group commit) ~12–23k/s against ~22–34k/s; two instances writing one store at once
//! ~10–12k/s against ~12–19k/s: each commit of a store now queues on its usage row.
//!
//! Quotas: a mutation carrying one runs alone in its transaction through the Txn protocol below
//! (its key locked, so its stored size is known exactly and nobody changes it until COMMIT), which
//! gives its change per store (`usageChange`, stale operations excluded). If it grows a dimension,
//! after the other locks (`Tx.finish`) the usage triggers are made to fire at once (`SET
//! CONSTRAINTS … IMMEDIATE`): the transaction then holds its store's usage row, reads it (its own
//! update of the latest committed count), and `checkQuota` refuses with the usage before it;
//! ROLLBACK undoes everything. Two instances' quota'd writers of one store thus queue on that row
//! and each sees the others' committed growth. A Txn is checked as a whole. A remove never grows
//! usage, so it is never checked. Mutations without a quota keep the fast paths.
//! `recountUsage` locks the usage row first (creating it when absent), counts, and sets it: a
//! mutation committing meanwhile waits at its COMMIT, so it is in both the count and the record
//! or in neither (it adds its change afterwards).
//!
//! Deadlock freedom: every transaction takes its row locks in one global order — `tierkv_kv`
//! rows by (store, primary, secondary, key), then `tierkv_owed` rows in the same order, then the
//! clock row, then `tierkv_usage` rows by store (the deferred triggers fire in the order of the
//! transaction's row changes, which follow the key order). A batch sorts its mutations by key
//! (stably: one key's mutations keep their order); a Txn applies its (distinct) keys in key order.
//! Serialization failures and deadlocks that happen anyway are retried a few times, then reported
//! as `unavailable`.
//!
//! Group commit: mutations that arrive in the same turn of the event loop share one transaction
//! (bounded by count and bytes, spread over the free connections), and up to `pool_max` such
//! transactions run at once. A key's mutations never run in two transactions at once, so they
//! apply in the order they were made. A lone mutation of one statement skips BEGIN/COMMIT, and a
//! batch of versioned writes to distinct keys is one multi-row statement (one round trip); plain
//! writes have their own multi-row statement (a batch mixing plain and versioned writes runs one
//! statement per write: `ON CONFLICT DO UPDATE` cannot see a per-row flag, and a server sends one
//! kind or the other).
//! Measured (fsync on, pool 10, 100-byte versioned writes, 2.5 s per point, noisy VM disk):
//! about even with one transaction per mutation up to 16 concurrent writers, 1.2–3× the
//! throughput from 64 up (e.g. 256 writers: ~2,200–4,000/s against ~800–1,700/s; same ranking
//! through a proxy adding 1 ms each way). `groupCommit: false` turns it off.
//!
//! ListPage order: newest-created first by `seq`. With several instances, `seq` follows the
//! order rows were inserted, not committed: a page walk running beside another instance's
//! creations may miss a key created meanwhile (as any walk may).

import { readFileSync } from "node:fs";
import pg from "pg";
import { effectivePageSize, GROUP_COMMIT_MAX_BYTES, GROUP_COMMIT_MAX_MUTATIONS } from "../limits.js";
import { invalidArgument, notFound, StoreError } from "./errors.js";
import { appliedVersion, checkQuota, firstFailedCheck, isStale, stateAfterWrite, usageChange, type StoredState } from "./mutation-rules.js";
import { allKeysPage, allKeysStart, decodeSequenceToken, sequencePage } from "./page-token.js";
import { postgresSnapshotRecords } from "./postgres-snapshot.js";
import { redactStoreUri } from "./redact.js";
import {
  storeIdOf,
  VersionedReads,
  type AllKeysPage,
  type AllKeysRequest,
  type BackupLedger,
  type KVStore,
  type StoreUsage,
  type StoreUsageReader,
  type KeyRef,
  type KeyState,
  type KeyVersion,
  type ListOptions,
  type MutationOptions,
  type MutationOutcome,
  type NamespaceRef,
  type Page,
  type PageRequest,
  type Quota,
  type RemoveOptions,
  type TxnCheck,
  type SnapshotSource,
  type StoredRecord,
  type TxnRequest,
  type TxnResult,
  type VersionedValue,
} from "./types.js";
import { formatPath, validateKey, validateNamespace, validateTxn } from "./validate.js";

/** The latest version in `tierkv_migrations` this tierkv writes; a newer database is refused. */
export const POSTGRES_SCHEMA_VERSION = 2;

/** Default size of the connection pool (`pool_max`). */
export const DEFAULT_POOL_MAX = 10;
/** Default time to connect (or to wait for a pooled connection), `connect_timeout` in seconds. */
export const DEFAULT_CONNECT_TIMEOUT_S = 10;
/** Attempts of a transaction that failed with a serialization failure or deadlock. */
const MAX_ATTEMPTS = 5;
/** Any constant identifies tierkv's migration lock among the database's advisory locks. */
const MIGRATION_LOCK_ID = "7596506447153934336";

const MIGRATIONS: readonly string[] = [
  // 0 → 1: the initial schema.
  `CREATE TABLE tierkv_kv (
     store_id text COLLATE "C" NOT NULL,
     primary_namespace text COLLATE "C" NOT NULL,
     secondary_namespace text COLLATE "C" NOT NULL,
     key text COLLATE "C" NOT NULL,
     seq bigserial NOT NULL,
     value bytea NOT NULL,
     version bigint NOT NULL,
     revision bigint NOT NULL,
     PRIMARY KEY (store_id, primary_namespace, secondary_namespace, key)
   );
   CREATE INDEX tierkv_kv_by_creation ON tierkv_kv (store_id, primary_namespace, secondary_namespace, seq);
   CREATE INDEX tierkv_kv_by_version ON tierkv_kv (version);
   CREATE TABLE tierkv_owed (
     store_id text COLLATE "C" NOT NULL,
     primary_namespace text COLLATE "C" NOT NULL,
     secondary_namespace text COLLATE "C" NOT NULL,
     key text COLLATE "C" NOT NULL,
     version bigint NOT NULL,
     PRIMARY KEY (store_id, primary_namespace, secondary_namespace, key)
   );
   CREATE TABLE tierkv_clock (
     id integer PRIMARY KEY CHECK (id = 0),
     highest_version bigint NOT NULL
   );
   INSERT INTO tierkv_clock VALUES (0, 0);`,
  // 1 → 2: each store's usage, kept by the database itself (see the header). The triggers come
  // first: creating them locks tierkv_kv against writers (instances of the old schema included)
  // until this migration commits, so the count below misses no write and no write is counted twice.
  `CREATE TABLE tierkv_usage (
     store_id text COLLATE "C" PRIMARY KEY,
     keys bigint NOT NULL,
     bytes bigint NOT NULL
   );
   CREATE FUNCTION tierkv_usage_change() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     IF TG_OP = 'INSERT' THEN
       INSERT INTO tierkv_usage AS u (store_id, keys, bytes) VALUES (NEW.store_id, 1, octet_length(NEW.value))
         ON CONFLICT (store_id) DO UPDATE SET keys = u.keys + 1, bytes = u.bytes + excluded.bytes;
     ELSIF TG_OP = 'DELETE' THEN
       UPDATE tierkv_usage SET keys = keys - 1, bytes = bytes - octet_length(OLD.value) WHERE store_id = OLD.store_id;
     ELSE
       UPDATE tierkv_usage SET bytes = bytes + octet_length(NEW.value) - octet_length(OLD.value) WHERE store_id = NEW.store_id;
     END IF;
     RETURN NULL;
   END $$;
   CREATE CONSTRAINT TRIGGER tierkv_usage_keys AFTER INSERT OR DELETE ON tierkv_kv
     DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tierkv_usage_change();
   CREATE CONSTRAINT TRIGGER tierkv_usage_bytes AFTER UPDATE ON tierkv_kv
     DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
     WHEN (octet_length(OLD.value) <> octet_length(NEW.value)) EXECUTE FUNCTION tierkv_usage_change();
   INSERT INTO tierkv_usage (store_id, keys, bytes)
     SELECT store_id, count(*), coalesce(sum(octet_length(value)), 0) FROM tierkv_kv GROUP BY store_id;`,
];

/** Fires the usage triggers' pending events now (a quota check reads the usage they make). */
const USAGE_TRIGGERS_NOW = "SET CONSTRAINTS tierkv_usage_keys, tierkv_usage_bytes IMMEDIATE";

// ---------------------------------------------------------------------------------------------
// URI

export interface PostgresStoreOptions {
  /**
   * Group commit (default true): the mutations of one event-loop turn share a transaction.
   * false gives every mutation a transaction of its own (for measurements).
   */
  readonly groupCommit?: boolean;
}

const URI_PARAMETERS = new Set(["sslmode", "sslrootcert", "sslcert", "sslkey", "pool_max", "connect_timeout", "application_name"]);

/**
 * The pool configuration a store URI names. Parameters (all optional):
 * - `sslmode`: `disable` (default: no TLS), `require` (encrypted; the certificate is checked
 *   against `sslrootcert` when given, else not at all, as libpq does), `verify-ca` (chain only),
 *   `verify-full` (chain and host name; the system's CAs unless `sslrootcert`).
 * - `sslrootcert`, `sslcert`, `sslkey`: PEM files (CA bundle; client certificate and key).
 * - `pool_max`: most connections (default 10); `connect_timeout`: seconds (default 10).
 * - `application_name` (default `tierkv`).
 *
 * `readFiles: false` checks the URI without reading the PEM files it names (`--print-config`,
 * which touches no file); the result is then for nothing but the check.
 */
export function parsePostgresUri(uri: string, { readFiles = true } = {}): pg.PoolConfig {
  const bad = (problem: string): StoreError => invalidArgument(`store URI "${redactStoreUri(uri)}": ${problem}`);
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw bad("not a valid postgres:// URI");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") throw bad("expected postgres:// or postgresql://");
  if (url.hostname === "") throw bad("names no host");
  for (const name of url.searchParams.keys()) {
    if (!URI_PARAMETERS.has(name)) throw bad(`unknown parameter "${name}"; expected one of ${[...URI_PARAMETERS].join(", ")}`);
  }
  const param = (name: string): string | undefined => url.searchParams.get(name) ?? undefined;
  const integer = (name: string, fallback: number, max: number): number => {
    const text = param(name);
    if (text === undefined) return fallback;
    if (!/^[0-9]+$/.test(text) || Number(text) < 1 || Number(text) > max) throw bad(`${name} must be an integer in 1..${max}`);
    return Number(text);
  };
  const file = (name: string): string | undefined => {
    const path = param(name);
    if (path === undefined || !readFiles) return path;
    try {
      return readFileSync(path, "utf8");
    } catch (error) {
      throw new StoreError("invalid-argument", `store URI: cannot read the ${name} file`, { cause: error });
    }
  };
  const decoded = (text: string, what: string): string => {
    try {
      return decodeURIComponent(text);
    } catch {
      throw bad(`${what} is not valid percent-encoding (write a literal % as %25)`);
    }
  };
  const database = decoded(url.pathname.replace(/^\//, ""), "the database name");
  const config: pg.PoolConfig = {
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port === "" ? 5432 : Number(url.port),
    user: url.username === "" ? undefined : decoded(url.username, "the user name"),
    password: url.password === "" ? undefined : decoded(url.password, "the password"),
    database: database === "" ? undefined : database,
    max: integer("pool_max", DEFAULT_POOL_MAX, 1000),
    connectionTimeoutMillis: integer("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S, 3600) * 1000,
    application_name: param("application_name") ?? "tierkv",
    // Notices a peer that vanished without closing the connection.
    keepAlive: true,
  };
  const mode = param("sslmode") ?? (param("sslrootcert") !== undefined ? "verify-full" : "disable");
  const ca = file("sslrootcert");
  const cert = file("sslcert");
  const key = file("sslkey");
  const identity = { ...(ca === undefined ? {} : { ca }), ...(cert === undefined ? {} : { cert }), ...(key === undefined ? {} : { key }) };
  switch (mode) {
    case "disable":
      config.ssl = false;
      break;
    case "require":
      config.ssl = ca === undefined ? { ...identity, rejectUnauthorized: false } : { ...identity, checkServerIdentity: () => undefined };
      break;
    case "verify-ca":
      if (ca === undefined) throw bad("sslmode=verify-ca needs sslrootcert");
      config.ssl = { ...identity, checkServerIdentity: () => undefined };
      break;
    case "verify-full":
      config.ssl = identity;
      break;
    default:
      throw bad(`sslmode must be disable, require, verify-ca or verify-full`);
  }
  return config;
}

// ---------------------------------------------------------------------------------------------
// Errors

const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
]);

/** SQLSTATEs after which the same transaction, run again, may succeed. */
function isRetryable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "40001" || code === "40P01";
}

/** The innermost error with a code (Node wraps failed connects to every address in an AggregateError). */
function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") return code;
  if (error instanceof AggregateError) {
    for (const inner of error.errors) {
      const found = codeOf(inner);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/**
 * What a caller may learn of a PostgreSQL failure: the kind, never SQL text, a host name, a port
 * or a path. The original stays in `cause` for the server log.
 */
export function postgresStoreError(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const unavailable = (message: string): StoreError => new StoreError("unavailable", message, { cause: error });
  const code = codeOf(error);
  if (code !== undefined) {
    if (code === "53100") return new StoreError("resource-exhausted", "the database's disk is full", { cause: error });
    if (code.startsWith("53")) return unavailable("the database is out of resources (memory or connections); retry");
    if (code === "40001" || code === "40P01") return unavailable("the database is busy (transactions kept conflicting); retry");
    if (code.startsWith("08")) return unavailable("the connection to the database failed");
    if (code.startsWith("57P")) return unavailable("the database is shutting down or restarting");
    if (code === "57014") return unavailable("the database cancelled the statement");
    if (code.startsWith("28")) return unavailable("the database refused tierkv's credentials");
    if (code === "3D000") return unavailable("the database does not exist");
    if (code === "25006") return unavailable("the database is read-only");
    if (code === "22003") return new StoreError("invalid-argument", "a version or revision is out of range", { cause: error });
    if (code === "54000") return new StoreError("invalid-argument", "a value is too large for the database", { cause: error });
    if (UNREACHABLE_CODES.has(code)) return unavailable("the database cannot be reached");
    if (/CERT|SSL|TLS|^UNABLE_TO_|^INVALID_CA$|HOSTNAME_MISMATCH|^PATH_LENGTH_EXCEEDED$|^INVALID_PURPOSE$/.test(code)) {
      return unavailable("the database's TLS certificate was not accepted");
    }
  }
  const message = error instanceof Error ? error.message : "";
  if (/Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection closed/i.test(message)) {
    return unavailable("the connection to the database failed");
  }
  if (/does not support SSL/i.test(message)) return unavailable("the database does not accept TLS connections");
  if (/Cannot use a pool after calling end|Client was closed/i.test(message)) return unavailable("the store is closed");
  return new StoreError("internal", "internal error", { cause: error });
}

// ---------------------------------------------------------------------------------------------
// SQL

const PK = "store_id = $1 AND primary_namespace = $2 AND secondary_namespace = $3 AND key = $4";
const NS = "store_id = $1 AND primary_namespace = $2 AND secondary_namespace = $3";
const ALL_KEYS_COLUMNS = "store_id, primary_namespace, secondary_namespace, key, version, revision";

const SQL = {
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
  // recountUsage: the record locked (created when absent) first, so no commit changes it meanwhile.
  createUsage: `INSERT INTO tierkv_usage (store_id, keys, bytes) VALUES ($1, 0, 0) ON CONFLICT DO NOTHING`,
  lockUsage: `SELECT keys, bytes FROM tierkv_usage WHERE store_id = $1 FOR UPDATE`,
  countUsage: `SELECT count(*) AS keys, coalesce(sum(octet_length(value)), 0) AS bytes FROM tierkv_kv WHERE store_id = $1`,
  setUsage: `UPDATE tierkv_usage SET keys = $2, bytes = $3 WHERE store_id = $1`,
  raiseClock: `UPDATE tierkv_clock SET highest_version = $1 WHERE highest_version < $1`,
  highest: `SELECT greatest((SELECT max(version) FROM tierkv_kv), (SELECT highest_version FROM tierkv_clock)) AS v`,
} as const;

/** Statements are prepared once per connection under their name. */
function statement(name: keyof typeof SQL, values: readonly unknown[]): pg.QueryConfig {
  return { name: `tierkv_${name}`, text: SQL[name], values: values as unknown[] };
}

/** int8 columns arrive as bigint (versions exceed 2^53); everything else as node-postgres parses it. */
const TYPES = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === pg.types.builtins.INT8 ? (text: string) => BigInt(text) : pg.types.getTypeParser(oid, format ?? "text")) as typeof pg.types.getTypeParser,
};

type KeyParams = [string, string, string, string];

function keyParams(ref: KeyRef): KeyParams {
  return [storeIdOf(ref), ref.primaryNamespace, ref.secondaryNamespace, ref.key];
}

function namespaceParams(ns: NamespaceRef): [string, string, string] {
  return [storeIdOf(ns), ns.primaryNamespace, ns.secondaryNamespace];
}

/** A key's identity and position in the global lock order (NUL never appears in a valid name). */
function keyId(ref: KeyRef): string {
  return keyParams(ref).join("\0");
}

function byId<T extends { readonly id: string }>(a: T, b: T): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

interface DbKey {
  store_id: string;
  primary_namespace: string;
  secondary_namespace: string;
  key: string;
}

interface DbKeyVersion extends DbKey {
  version: bigint;
  revision: bigint;
}

interface DbUsage {
  keys: bigint;
  bytes: bigint;
}

function usageOf(row: DbUsage | undefined): StoreUsage {
  return { keys: Number(row?.keys ?? 0n), bytes: Number(row?.bytes ?? 0n) };
}

function toKeyVersion(row: DbKeyVersion): KeyVersion {
  return {
    storeId: row.store_id,
    primaryNamespace: row.primary_namespace,
    secondaryNamespace: row.secondary_namespace,
    key: row.key,
    version: row.version,
    revision: row.revision,
  };
}

// ---------------------------------------------------------------------------------------------
// Migrations

async function migrate(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    const current = async (): Promise<number> => {
      const exists = await client.query<{ t: string | null }>(`SELECT to_regclass('tierkv_migrations')::text AS t`);
      if (exists.rows[0]?.t == null) return 0;
      const result = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM tierkv_migrations`);
      return result.rows[0]?.v ?? 0;
    };
    const refuseNewer = (version: number): void => {
      if (version > MIGRATIONS.length) {
        throw new StoreError(
          "failed-precondition",
          `the database has schema version ${version}, newer than this tierkv understands (${MIGRATIONS.length})`,
        );
      }
    };
    // The common case, an up-to-date schema, needs neither the lock nor DDL rights.
    const seen = await current();
    refuseNewer(seen);
    if (seen === MIGRATIONS.length) return;
    await client.query("BEGIN");
    try {
      await client.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_ID})`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS tierkv_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      const locked = await current();
      refuseNewer(locked);
      for (let v = locked; v < MIGRATIONS.length; v++) {
        await client.query(MIGRATIONS[v]!);
        await client.query(`INSERT INTO tierkv_migrations (version) VALUES ($1)`, [v + 1]);
      }
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    }
  } finally {
    client.release();
  }
}

/**
 * Gives a never-analyzed `tierkv_kv` planner statistics. Without them PostgreSQL answers a point
 * read through the (namespace, seq) index and filters the whole namespace (measured: 6,038 µs of
 * server CPU per read in a 10,000-key namespace, 85 µs after ANALYZE). Autovacuum keeps them fresh
 * afterwards; a role that may not analyze skips it.
 */
async function analyzeIfNeverAnalyzed(pool: pg.Pool): Promise<void> {
  const stats = await pool.query<{ analyzed: boolean }>(
    `SELECT (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL) AS analyzed
     FROM pg_stat_user_tables WHERE relname = 'tierkv_kv'`,
  );
  if (stats.rows[0]?.analyzed === false) await pool.query("ANALYZE tierkv_kv").catch(() => undefined);
}

// ---------------------------------------------------------------------------------------------
// Transactions and group commit

/** The work of one transaction besides its `tierkv_kv` statements, done after all of them. */
class Tx {
  readonly owed: Array<{ id: string; text: "recordOwed" | "settleOwed"; values: unknown[] }> = [];
  highest = 0n;
  rollback = false;
  /** The quota this transaction's mutations must fit, with their change per store (a lone mutation or Txn). */
  quota: { readonly quota: Quota; readonly changes: ReadonlyMap<string, StoreUsage> } | undefined;

  constructor(readonly client: pg.PoolClient) {}

  async query<R extends pg.QueryResultRow>(name: keyof typeof SQL, values: readonly unknown[]): Promise<pg.QueryResult<R>> {
    return this.client.query<R>(statement(name, values));
  }

  owe(ref: KeyRef, version: bigint): void {
    this.owed.push({ id: keyId(ref), text: "recordOwed", values: [...keyParams(ref), version] });
  }

  settle(ref: KeyRef, version: bigint): void {
    this.owed.push({ id: keyId(ref), text: "settleOwed", values: [...keyParams(ref), version] });
  }

  raise(version: bigint | undefined): void {
    if (version !== undefined && version > this.highest) this.highest = version;
  }

  /**
   * The ledger rows in key order, then the clock row: the tail of the global lock order. Then the
   * quota check, if any: the usage triggers fire now instead of at COMMIT (taking the usage rows'
   * locks last, as at COMMIT), and the usage read is this transaction's own, locked row.
   */
  async finish(): Promise<void> {
    for (const op of [...this.owed].sort(byId)) await this.client.query(statement(op.text, op.values));
    if (this.highest > 0n) await this.client.query(statement("raiseClock", [this.highest]));
    if (this.quota === undefined) return;
    // A change that grows nothing is never refused: no need to look.
    const growing = [...this.quota.changes].filter(([, change]) => change.keys > 0 || change.bytes > 0);
    if (growing.length === 0) return;
    await this.client.query(USAGE_TRIGGERS_NOW);
    const rows = (await this.query<{ store_id: string; keys: bigint; bytes: bigint }>("usageOf", [growing.map(([storeId]) => storeId)])).rows;
    for (const [storeId, change] of growing) {
      const row = rows.find((candidate) => candidate.store_id === storeId);
      const after = { keys: Number(row?.keys ?? 0n), bytes: Number(row?.bytes ?? 0n) };
      checkQuota(storeId, { keys: after.keys - change.keys, bytes: after.bytes - change.bytes }, change, this.quota.quota);
    }
  }
}

/** What a write that can share a multi-row statement needs. */
interface BatchableWrite {
  readonly ref: KeyRef;
  readonly value: Uint8Array;
  readonly version: bigint;
  readonly revision: bigint | undefined;
  /** Plain writes share a statement only with plain writes (and never carry a revision). */
  readonly plain: boolean;
  readonly owedToBackup: boolean;
}

/**
 * Values up to this size join a multi-row statement. Array parameters travel as text (values
 * hex-encoded, twice their size), so larger values are cheaper sent one statement each, as binary.
 */
const MULTI_ROW_MAX_VALUE_BYTES = 16 * 1024;

/**
 * The writes of `order` (units in key order) when all of them can go in one multi-row statement:
 * two or more versioned writes of distinct keys, small values, all with a revision given or all
 * without. Otherwise undefined: the units run one statement each.
 */
function multiRowWrites(order: readonly Unit[]): BatchableWrite[] | undefined {
  if (order.length < 2) return undefined;
  const writes: BatchableWrite[] = [];
  for (const [i, unit] of order.entries()) {
    const write = unit.write;
    if (write === undefined || write.value.byteLength > MULTI_ROW_MAX_VALUE_BYTES) return undefined;
    if (
      i > 0 &&
      (unit.id === order[i - 1]!.id || (write.revision === undefined) !== (writes[0]!.revision === undefined) || write.plain !== writes[0]!.plain)
    ) {
      return undefined;
    }
    writes.push(write);
  }
  return writes;
}

/** Applies `writes` (distinct keys, in key order) in one statement; their outcomes, in order. */
async function applyWritesTogether(tx: Tx, writes: readonly BatchableWrite[]): Promise<Mutated[]> {
  const columns: unknown[][] = [[], [], [], [], [], []];
  for (const write of writes) {
    keyParams(write.ref).forEach((part, i) => columns[i]!.push(part));
    columns[4]!.push(write.value);
    columns[5]!.push(write.version);
  }
  const given = writes[0]!.revision !== undefined;
  if (given) columns.push(writes.map((write) => write.revision));
  const name = given ? "writeManyRevisions" : writes[0]!.plain ? "writeManyPlain" : "writeMany";
  const applied = (await tx.query<DbKey & { version: bigint }>(name, columns)).rows;
  const appliedVersions = new Map(
    applied.map((row) => [
      keyId({ storeId: row.store_id, primaryNamespace: row.primary_namespace, secondaryNamespace: row.secondary_namespace, key: row.key }),
      row.version,
    ]),
  );
  return writes.map((write) => {
    const version = appliedVersions.get(keyId(write.ref));
    if (write.owedToBackup) tx.owe(write.ref, version ?? write.version);
    return version === undefined ? { outcome: "stale" } : { outcome: "applied", version };
  });
}

/** A mutation (or Txn) waiting for a transaction. */
interface Unit {
  /** Position in the lock order (a Txn, alone in its transaction, locks its keys itself). */
  readonly id: string;
  /** Every key it touches: none of them may be in another running transaction. */
  readonly keys: readonly string[];
  readonly bytes: number;
  /** Runs alone in its transaction (a Txn). */
  readonly alone: boolean;
  /** Makes exactly one statement: alone in a batch, it needs no BEGIN and COMMIT. */
  readonly oneStatement: boolean;
  readonly run: (tx: Tx) => Promise<unknown>;
  /** Set on a versioned, non-exact write: it may join its batch's one multi-row statement. */
  readonly write?: BatchableWrite;
  readonly resolve: (result: unknown) => void;
  readonly reject: (error: unknown) => void;
}

export class PostgresStore extends VersionedReads implements KVStore, BackupLedger, StoreUsageReader, SnapshotSource {
  private pending: Unit[] = [];
  /** Keys of the mutations in running transactions, with how many of those touch each. */
  private readonly busy = new Map<string, number>();
  private running = 0;
  private scheduled = false;
  private closed = false;
  private idle: Array<() => void> = [];
  private readonly maxRunning: number;
  private retried = 0;
  private readonly maxBatch: number;

  private constructor(
    private readonly pool: pg.Pool,
    poolMax: number,
    options: PostgresStoreOptions,
  ) {
    super();
    this.maxRunning = poolMax;
    this.maxBatch = options.groupCommit === false ? 1 : GROUP_COMMIT_MAX_MUTATIONS;
  }

  /** Transactions run again after a serialization failure or deadlock (for metrics and tests). */
  get retriedTransactions(): number {
    return this.retried;
  }

  /** Connects, creates or upgrades the schema, and returns the store. */
  static async open(uri: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const config = parsePostgresUri(uri);
    const pool = new pg.Pool({ ...config, types: TYPES });
    // A connection the server drops emits "error": while pooled on the pool, while checked out
    // on the client (the statement in flight rejects as well). Either way the next query
    // reconnects; without these listeners the event would crash the process.
    pool.on("error", () => undefined);
    pool.on("connect", (client) => client.on("error", () => undefined));
    try {
      await migrate(pool);
      await analyzeIfNeverAnalyzed(pool);
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw postgresStoreError(error);
    }
    return new PostgresStore(pool, config.max ?? DEFAULT_POOL_MAX, options);
  }

  private async query<R extends pg.QueryResultRow>(name: keyof typeof SQL, values: readonly unknown[]): Promise<R[]> {
    if (this.closed) throw new StoreError("unavailable", "the store is closed");
    try {
      return (await this.pool.query<R>(statement(name, values))).rows;
    } catch (error) {
      throw postgresStoreError(error);
    }
  }

  async readVersioned(ref: KeyRef): Promise<VersionedValue> {
    validateKey(ref, "read");
    const [row] = await this.query<{ value: Buffer; version: bigint; revision: bigint }>("read", keyParams(ref));
    if (row === undefined) throw notFound("read", formatPath(ref));
    return row;
  }

  async readState(ref: KeyRef): Promise<KeyState | undefined> {
    validateKey(ref, "read");
    const [row] = await this.query<StoredState>("state", keyParams(ref));
    return row;
  }

  async write(ref: KeyRef, value: Uint8Array, options: MutationOptions = {}): Promise<MutationOutcome> {
    validateKey(ref, "write");
    const plain = options.plain === true && options.version !== undefined && !options.exact;
    let mutated: Mutated;
    if (options.quota !== undefined) {
      // Checked against its store's usage in a transaction of its own, on the locked key (as a Txn).
      const operation: LockedOperation = { ref, kind: "write", value, version: options.version, plain, revision: options.revision, exact: options.exact };
      mutated = await this.schedule({ id: "", keys: [keyId(ref)], bytes: value.byteLength, alone: true, oneStatement: false }, async (tx) =>
        mutatedOf(await runLocked(tx, [], [operation], new Map([[keyId(ref), ref]]), { ...options, single: true })),
      );
    } else {
      // An exact write may lower the stored version: it reads the old one for the clock row first.
      const batchable =
        options.version !== undefined && !options.exact && !(plain && options.revision !== undefined)
          ? { ref, value, version: options.version, revision: options.revision, plain, owedToBackup: options.owedToBackup === true }
          : undefined;
      mutated = await this.enqueue(
        ref,
        value.byteLength,
        !options.owedToBackup && !options.exact,
        async (tx) => {
          const result = await applyWrite(tx, ref, value, { ...options, plain });
          if (options.owedToBackup) tx.owe(ref, result.version ?? options.version ?? 0n);
          return result;
        },
        batchable,
      );
    }
    // Resolved: committed.
    if (mutated.version !== undefined) options.onVersion?.(mutated.version);
    return mutated.outcome;
  }

  /** A remove never grows usage, so its quota (if any) can never refuse it: it is not checked. */
  async remove(ref: KeyRef, options: RemoveOptions = {}): Promise<MutationOutcome> {
    validateKey(ref, "remove");
    const version = options.exact ? undefined : options.version;
    const plain = options.plain === true && version !== undefined;
    // A lazy remove rides the same group commit: nothing to gain from deferring it further.
    // A remove raises the clock row to the version it removed.
    const mutated = await this.enqueue(ref, 0, false, async (tx) => {
      const result = await applyRemove(tx, ref, version, plain);
      if (options.owedToBackup) tx.owe(ref, result.version ?? options.version ?? 0n);
      return result;
    });
    if (mutated.version !== undefined) options.onVersion?.(mutated.version);
    return mutated.outcome;
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    validateTxn(request);
    const refs = new Map<string, KeyRef>();
    for (const ref of [...request.checks, ...request.operations]) refs.set(keyId(ref), ref);
    const bytes = request.operations.reduce((sum, op) => sum + (op.kind === "write" ? op.value.byteLength : 0), 0);
    const operations = request.operations.map(
      (op): LockedOperation => ({
        ref: op,
        kind: op.kind,
        value: op.kind === "write" ? op.value : undefined,
        version: op.version ?? request.version,
        plain: request.plain === true,
        revision: op.kind === "write" ? op.revision : undefined,
      }),
    );
    return this.schedule<TxnResult>({ id: "", keys: [...refs.keys()], bytes, alone: true, oneStatement: false }, (tx) =>
      runLocked(tx, request.checks, operations, refs, request),
    );
  }

  async settleOwed(ref: KeyRef, version: bigint): Promise<void> {
    await this.enqueue(ref, 0, true, async (tx) => tx.settle(ref, version));
  }

  async list(ns: NamespaceRef, options: ListOptions = {}): Promise<string[]> {
    validateNamespace(ns, "list");
    const rows = await this.query<{ key: string }>("list", [...namespaceParams(ns), options.limit ?? null]);
    return rows.map((row) => row.key);
  }

  async listPage(ns: NamespaceRef, page: PageRequest = {}): Promise<Page> {
    validateNamespace(ns, "list");
    const before = page.pageToken ? decodeSequenceToken(ns, page.pageToken) : Number.MAX_SAFE_INTEGER;
    const size = effectivePageSize(page.pageSize);
    return sequencePage(ns, await this.query<{ key: string; seq: bigint }>("page", [...namespaceParams(ns), before, size + 1]), size);
  }

  async listAllKeys(request: AllKeysRequest = {}): Promise<AllKeysPage> {
    if (!request.allStores) validateNamespace({ storeId: storeIdOf(request), primaryNamespace: "", secondaryNamespace: "" }, "list all keys");
    const limit = effectivePageSize(request.limit);
    const after = [...keyParams(allKeysStart(request)), limit + 1];
    const rows = await this.query<DbKeyVersion>(request.allStores ? "allKeysOfAllStores" : "allKeysOfStore", after);
    return allKeysPage(rows.map(toKeyVersion), limit);
  }

  async listOwed(limit: number, after?: KeyRef): Promise<KeyVersion[]> {
    const from = after === undefined ? ["", "", "", ""] : keyParams(after);
    return (await this.query<DbKeyVersion>("listOwed", [...from, limit])).map(toKeyVersion);
  }

  async countOwed(): Promise<number> {
    const [row] = await this.query<{ n: bigint }>("countOwed", []);
    return Number(row?.n ?? 0n);
  }

  async storeUsage(storeId: string): Promise<StoreUsage> {
    return usageOf((await this.query<DbUsage>("usage", [storeId]))[0]);
  }

  /**
   * One transaction that locks the store's usage row first: a mutation committing meanwhile waits
   * for it (its triggers update that row at COMMIT), so it is in both the count and the record, or
   * in neither and adds its change to the recount afterwards.
   */
  async recountUsage(storeId: string): Promise<{ recorded: StoreUsage; counted: StoreUsage }> {
    return this.schedule({ id: "", keys: [], bytes: 0, alone: true, oneStatement: false }, async (tx) => {
      await tx.query("createUsage", [storeId]);
      const recorded = usageOf((await tx.query<DbUsage>("lockUsage", [storeId])).rows[0]);
      const counted = usageOf((await tx.query<DbUsage>("countUsage", [storeId])).rows[0]);
      await tx.query("setUsage", [storeId, counted.keys, counted.bytes]);
      return { recorded, counted };
    });
  }

  async highestVersion(): Promise<bigint> {
    const [row] = await this.query<{ v: bigint | null }>("highest", []);
    return row?.v ?? 0n;
  }

  /** One REPEATABLE READ transaction's view (see postgres-snapshot.ts). */
  snapshotRecords(signal?: AbortSignal): AsyncIterable<StoredRecord> {
    return postgresSnapshotRecords(this.pool, signal);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Mutations already accepted are committed, not dropped.
    this.pump();
    if (this.running > 0 || this.pending.length > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    await this.pool.end().catch(() => undefined);
  }

  // -- group commit ----------------------------------------------------------------------------

  private enqueue<T>(ref: KeyRef, bytes: number, oneStatement: boolean, run: (tx: Tx) => Promise<T>, write?: BatchableWrite): Promise<T> {
    const id = keyId(ref);
    return this.schedule({ id, keys: [id], bytes, alone: false, oneStatement, ...(write !== undefined && { write }) }, run);
  }

  private schedule<T>(unit: Omit<Unit, "run" | "resolve" | "reject">, run: (tx: Tx) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StoreError("unavailable", "the store is closed"));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ ...unit, run, resolve: resolve as (result: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // After the current I/O phase: every request already read from the sockets joins in.
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  /** Starts transactions for pending units while connections are free. */
  private pump(): void {
    while (this.running < this.maxRunning && this.pending.length > 0) {
      // Spread the waiting mutations over the free connections: every statement of a batch is a
      // round trip of its own, so one long batch on one connection would leave the others idle.
      const share = Math.ceil(this.pending.length / (this.maxRunning - this.running));
      const batch = this.takeBatch(Math.min(share, this.maxBatch));
      if (batch.length === 0) break;
      for (const unit of batch) for (const key of unit.keys) this.busy.set(key, (this.busy.get(key) ?? 0) + 1);
      this.running++;
      void this.commit(batch).finally(() => {
        for (const unit of batch) {
          for (const key of unit.keys) {
            const left = this.busy.get(key)! - 1;
            if (left === 0) this.busy.delete(key);
            else this.busy.set(key, left);
          }
        }
        this.running--;
        this.pump();
        if (this.running === 0 && this.pending.length === 0) for (const resolve of this.idle.splice(0)) resolve();
      });
    }
  }

  /**
   * The next transaction's units, in arrival order: bounded by count and bytes, none touching a
   * key of a running transaction or of an earlier unit left waiting (so a key's mutations keep
   * their order), and a Txn alone.
   */
  private takeBatch(size: number): Unit[] {
    const batch: Unit[] = [];
    const rest: Unit[] = [];
    const blocked = new Set<string>();
    let bytes = 0;
    for (const unit of this.pending) {
      const free = unit.keys.every((key) => !this.busy.has(key) && !blocked.has(key));
      const fits =
        batch.length < size &&
        !(batch.length > 0 && (unit.alone || batch[0]!.alone)) &&
        (batch.length === 0 || bytes + unit.bytes <= GROUP_COMMIT_MAX_BYTES);
      if (free && fits) {
        batch.push(unit);
        bytes += unit.bytes;
      } else {
        rest.push(unit);
        for (const key of unit.keys) blocked.add(key);
      }
    }
    this.pending = rest;
    return batch;
  }

  /** Runs `batch` in one transaction; one failing mutation does not fail its neighbours. */
  private async commit(batch: Unit[]): Promise<void> {
    let results: unknown[];
    try {
      results = await this.transaction(batch);
    } catch (error) {
      const failure = postgresStoreError(error);
      if (batch.length === 1 || failure.code === "unavailable") {
        for (const unit of batch) unit.reject(failure);
        return;
      }
      // Commit each alone to find the bad one.
      for (const unit of batch) {
        try {
          unit.resolve((await this.transaction([unit]))[0]);
        } catch (single) {
          unit.reject(postgresStoreError(single));
        }
      }
      return;
    }
    batch.forEach((unit, i) => unit.resolve(results[i]));
  }

  /**
   * One transaction over `batch` (sorted by key: the lock order), retried on serialization
   * failures and deadlocks. Returns the results in the batch's order. A lone mutation of one
   * statement runs without BEGIN and COMMIT: one round trip instead of three.
   */
  private async transaction(batch: readonly Unit[]): Promise<unknown[]> {
    const order = batch.map((unit, index) => ({ unit, index, id: unit.id })).sort(byId);
    // Versioned writes of distinct keys go in one multi-row statement: one round trip, not one each.
    const together = multiRowWrites(order.map(({ unit }) => unit));
    const autocommit = together !== undefined ? together.every((write) => !write.owedToBackup) : batch.length === 1 && batch[0]!.oneStatement;
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      let broken = false;
      try {
        if (!autocommit) await client.query("BEGIN");
        const tx = new Tx(client);
        const results: unknown[] = new Array(batch.length);
        try {
          if (together !== undefined) {
            const outcomes = await applyWritesTogether(tx, together);
            order.forEach(({ index }, i) => (results[index] = outcomes[i]));
          } else {
            for (const { unit, index } of order) results[index] = await unit.run(tx);
          }
          await tx.finish();
          if (!autocommit) await client.query(tx.rollback ? "ROLLBACK" : "COMMIT");
        } catch (error) {
          if (!autocommit) await client.query("ROLLBACK").catch(() => {
            broken = true;
          });
          throw error;
        }
        return results;
      } catch (error) {
        // A connection the server ended may still look usable for a moment: never pool it again.
        if (!isRetryable(error) && postgresStoreError(error).code === "unavailable") broken = true;
        if (!isRetryable(error) || attempt >= MAX_ATTEMPTS) throw error;
        this.retried++;
        // Randomised, growing back-off, so the transactions that collided do not collide again.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 2 ** attempt * 2));
      } finally {
        client.release(broken);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Mutations (run inside a Tx)

/** A mutation's outcome and the version it was applied at (none when stale, or for an unversioned remove). */
interface Mutated {
  readonly outcome: MutationOutcome;
  readonly version?: bigint;
}

async function applyWrite(
  tx: Tx,
  ref: KeyRef,
  value: Uint8Array,
  options: Pick<MutationOptions, "version" | "plain" | "revision" | "exact">,
): Promise<Mutated> {
  if (options.exact) {
    // The version it replaces leaves the version index: the clock row keeps it.
    const [old] = (await tx.query<StoredState>("lock", keyParams(ref))).rows;
    tx.raise(old?.version);
    await tx.query("writeExact", [...keyParams(ref), value, options.version ?? 0n, options.revision ?? 0n]);
    return { outcome: "applied", version: options.version ?? 0n };
  }
  const params = [...keyParams(ref), value, options.version ?? null, options.revision ?? null, options.plain === true];
  const [row] = (await tx.query<{ version: bigint }>("write", params)).rows;
  return row === undefined ? { outcome: "stale" } : { outcome: "applied", version: row.version };
}

async function applyRemove(tx: Tx, ref: KeyRef, version: bigint | undefined, plain: boolean): Promise<Mutated> {
  const [removed] = (await tx.query<{ version: bigint; applied: bigint }>("remove", [...keyParams(ref), version ?? null, plain])).rows;
  if (removed !== undefined) {
    // The removed key takes its version out of the version index: the clock row keeps it.
    tx.raise(removed.version);
    if (version === undefined) return { outcome: "applied" };
    tx.raise(removed.applied);
    return { outcome: "applied", version: removed.applied };
  }
  if (version === undefined) return { outcome: "applied" };
  // Nothing was removed. A plain remove found the key absent: applied at its proposal. Otherwise
  // the key is absent (applied) or holds this version or a later one (stale); either answer is
  // what a remove at this point of the history would have got.
  if (plain) return { outcome: "applied", version };
  const [row] = (await tx.query<{ version: bigint }>("version", keyParams(ref))).rows;
  return row !== undefined && row.version >= version ? { outcome: "stale" } : { outcome: "applied", version };
}

/** One operation of `runLocked`: a Txn's, or a lone mutation checked against a quota. */
interface LockedOperation {
  readonly ref: KeyRef;
  readonly kind: "write" | "remove";
  /** Set for writes. */
  readonly value?: Uint8Array | undefined;
  readonly version?: bigint | undefined;
  readonly plain: boolean;
  readonly revision?: bigint | undefined;
  readonly exact?: boolean | undefined;
}

/** A key's locked state, with the size of its value (usage). */
type LockedState = StoredState & { readonly size: number };

/** A lone write's result from `runLocked`'s. */
function mutatedOf(result: TxnResult): Mutated {
  if (!result.succeeded) throw new StoreError("internal", "a mutation without checks failed one");
  return result.outcomes[0] === "applied" ? { outcome: "applied", version: result.versions[0]! } : { outcome: "stale" };
}

/**
 * A Txn (or a lone mutation with a quota) alone in its transaction: lock every key in key order
 * (a present key's row FOR UPDATE; an absent key through a placeholder row, deleted again below),
 * decide on the locked state, apply. A failed check rolls back, placeholders included. The quota
 * is checked by `Tx.finish` against the usage the triggers make, with the change decided here
 * from the locked sizes (exact: no other transaction can change these keys until we commit).
 */
async function runLocked(
  tx: Tx,
  checks: readonly TxnCheck[],
  operations: readonly LockedOperation[],
  refs: ReadonlyMap<string, KeyRef>,
  options: { readonly owedToBackup?: boolean | undefined; readonly quota?: Quota | undefined; readonly single?: boolean },
): Promise<TxnResult> {
  const states = new Map<string, LockedState | undefined>();
  const placeholders = new Set<string>();
  for (const id of [...refs.keys()].sort()) {
    const params = keyParams(refs.get(id)!);
    for (let tries = 0; ; tries++) {
      const [row] = (await tx.query<LockedState>("lock", params)).rows;
      if (row !== undefined) {
        states.set(id, { version: row.version, revision: row.revision, size: row.size });
        break;
      }
      if ((await tx.query("placeholder", params)).rowCount !== 0) {
        states.set(id, undefined);
        placeholders.add(id);
        break;
      }
      // Created (or re-created) by another transaction in between: lock that row instead.
      if (tries >= 100) throw new StoreError("unavailable", "the database is busy (a key kept changing); retry");
    }
  }
  const failedCheck = firstFailedCheck(checks, (check) => states.get(keyId(check)));
  if (failedCheck >= 0) {
    tx.rollback = true;
    return { succeeded: false, failedCheck };
  }
  if (options.quota !== undefined) {
    // The operations' keys are distinct: each store's change is the sum of its operations'.
    const changes = new Map<string, StoreUsage>();
    for (const operation of operations) {
      const stored = states.get(keyId(operation.ref));
      if (isStale(stored, operation)) continue;
      const change = usageChange(stored?.size, operation.kind === "write" ? operation.value!.byteLength : undefined);
      const storeId = storeIdOf(operation.ref);
      const total = changes.get(storeId) ?? { keys: 0, bytes: 0 };
      changes.set(storeId, { keys: total.keys + change.keys, bytes: total.bytes + change.bytes });
    }
    tx.quota = { quota: options.quota, changes };
  }
  const outcomes: MutationOutcome[] = new Array(operations.length);
  const revisions: bigint[] = new Array(operations.length);
  const versions: bigint[] = new Array(operations.length);
  // In key order (the keys are distinct, so the order changes no result): the usage triggers'
  // events then lock the usage rows in store order.
  const order = operations.map((operation, index) => ({ operation, index, id: keyId(operation.ref) })).sort(byId);
  for (const { operation, index, id } of order) {
    const stored = states.get(id);
    const params = keyParams(operation.ref);
    if (isStale(stored, operation)) {
      outcomes[index] = "stale";
      revisions[index] = operation.kind === "write" ? stored!.revision : 0n;
      versions[index] = stored!.version;
    } else if (operation.kind === "write") {
      // An exact write takes the version it replaces out of the version index: the clock row keeps it.
      if (operation.exact) tx.raise(stored?.version);
      const next = stateAfterWrite(stored, operation);
      await tx.query("update", [...params, operation.value!, next.version, next.revision]);
      placeholders.delete(id);
      states.set(id, { ...next, size: operation.value!.byteLength });
      outcomes[index] = "applied";
      revisions[index] = next.revision;
      versions[index] = next.version;
    } else {
      const version = appliedVersion(stored, operation);
      if (stored !== undefined) {
        await tx.query("delete", params);
        tx.raise(stored.version);
        tx.raise(version);
        states.set(id, undefined);
      }
      outcomes[index] = "applied";
      revisions[index] = 0n;
      versions[index] = version ?? 0n;
    }
    if (options.owedToBackup) {
      // A lone stale mutation records its own version, as without a quota.
      tx.owe(operation.ref, options.single && outcomes[index] === "stale" ? (operation.version ?? 0n) : versions[index]!);
    }
  }
  // Keys only checked (or removed while absent) leave no row behind.
  for (const id of placeholders) await tx.query("delete", keyParams(refs.get(id)!));
  return { succeeded: true, outcomes, revisions, versions };
}

/** Opens the store a `postgres://` or `postgresql://` URI names. */
export function openPostgresStore(uri: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  return PostgresStore.open(uri, options);
}
