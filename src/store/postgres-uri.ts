//! PostgreSQL store URIs: `postgres://USER:PASSWORD@HOST:PORT/DATABASE?…` parsed into a
//! node-postgres pool configuration (TLS files, pool size, timeouts), secrets redacted in errors.

import { readFileSync } from "node:fs";
import type pg from "pg";
import { POSTGRES_DEFAULT_CONNECT_TIMEOUT_S, POSTGRES_DEFAULT_POOL_MAX, POSTGRES_MAX_CONNECT_TIMEOUT_S, POSTGRES_MAX_POOL_MAX } from "../limits.js";
import { invalidArgument, StoreError } from "./errors.js";
import { redactStoreUri } from "./redact.js";
import { uriQuery } from "../uri-query.js";

export { POSTGRES_DEFAULT_POOL_MAX as DEFAULT_POOL_MAX, POSTGRES_DEFAULT_CONNECT_TIMEOUT_S as DEFAULT_CONNECT_TIMEOUT_S };

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
  let query: Map<string, string>;
  try {
    query = uriQuery(url);
  } catch (error) {
    throw bad((error as Error).message);
  }
  for (const name of query.keys()) {
    if (!URI_PARAMETERS.has(name)) throw bad(`unknown parameter "${name}"; expected one of ${[...URI_PARAMETERS].join(", ")}`);
  }
  const param = (name: string): string | undefined => query.get(name);
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
    max: integer("pool_max", POSTGRES_DEFAULT_POOL_MAX, POSTGRES_MAX_POOL_MAX),
    connectionTimeoutMillis: integer("connect_timeout", POSTGRES_DEFAULT_CONNECT_TIMEOUT_S, POSTGRES_MAX_CONNECT_TIMEOUT_S) * 1000,
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
