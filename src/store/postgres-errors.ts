//! PostgreSQL errors (SQLSTATEs, connection failures) as `StoreError`s, and which of them a
//! transaction may retry.

import { StoreError } from "./errors.js";

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
export function isRetryable(error: unknown): boolean {
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
