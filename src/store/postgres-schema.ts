//! The PostgreSQL schema: its migrations (`tierkv_migrations`), applied on open in one transaction
//! under an advisory lock, and the first ANALYZE.

import type pg from "pg";
import { StoreError } from "./errors.js";

/** The latest version in `tierkv_migrations` this tierkv writes; a newer database is refused. */
export const POSTGRES_SCHEMA_VERSION = 3;
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
  // 2 → 3: the change log (Watch, followers; see postgres.ts) and each store's last sequence, kept
  // in its usage row. Every store starts at 0 with an empty log: what is stored is not replayed.
  `ALTER TABLE tierkv_usage ADD COLUMN seq bigint NOT NULL DEFAULT 0;
   CREATE TABLE tierkv_changes (
     store_id text COLLATE "C" NOT NULL,
     seq bigint NOT NULL,
     primary_namespace text COLLATE "C" NOT NULL,
     secondary_namespace text COLLATE "C" NOT NULL,
     key text COLLATE "C" NOT NULL,
     kind smallint NOT NULL,
     version bigint NOT NULL,
     revision bigint NOT NULL,
     size bigint NOT NULL,
     committed_at bigint NOT NULL,
     PRIMARY KEY (store_id, seq),
     -- 0: a put, 1: a remove. No value: a put's is read from its key while the key holds it.
     CHECK (kind IN (0, 1))
   );`,
];


export async function migrate(pool: pg.Pool): Promise<void> {
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
export async function analyzeIfNeverAnalyzed(pool: pg.Pool): Promise<void> {
  const stats = await pool.query<{ analyzed: boolean }>(
    `SELECT (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL) AS analyzed
     FROM pg_stat_user_tables WHERE relname = 'tierkv_kv'`,
  );
  if (stats.rows[0]?.analyzed === false) await pool.query("ANALYZE tierkv_kv").catch(() => undefined);
}
