//! Opening stores from their URIs (split once by src/store/store-uri.ts): `memory:`, `sqlite:PATH`,
//! `fs:DIR` (an LDK data directory), `postgres://…`, `grpc://host:port`, `grpcs://host:port?…`.

import { resolve } from "node:path";
import { checkRemoteUri, openRemoteStore } from "../remote/remote-store.js";
import { invalidArgument } from "../store/errors.js";
import { FsStore } from "../store/fs.js";
import { MemoryStore } from "../store/memory.js";
import { openPostgresStore, parsePostgresUri } from "../store/postgres.js";
import { redactStoreUri } from "../store/redact.js";
import { SqliteStore } from "../store/sqlite.js";
import { parseStoreUri, STORE_URI_SCHEMES, type StoreUri } from "../store/store-uri.js";
import type { KVStore } from "../store/types.js";

export { STORE_URI_SCHEMES } from "../store/store-uri.js";

export interface OpenStoreOptions {
  /**
   * `durable` (default) fsyncs every commit; `cache` (the ephemeral tier: rebuildable data) lets
   * SQLite (and fs:) skip the fsync and may lose the latest writes on power loss.
   */
  readonly durability?: "durable" | "cache";
}

/**
 * Checks a store URI without opening anything or reading the files it names (serve runs it
 * before opening its tiers, and `--print-config` runs it alone); throws `invalid-argument`.
 */
export function checkStoreUri(uri: string | StoreUri): StoreUri {
  const parsed = typeof uri === "string" ? parseStoreUri(uri) : uri;
  switch (parsed.kind) {
    case "memory":
      if (parsed.rest !== "") throw invalidArgument(`store URI "${parsed.uri}": memory: takes no path`);
      return parsed;
    case "sqlite":
      if (parsed.path === "") throw invalidArgument(`store URI "${parsed.uri}": sqlite: needs a file path`);
      return parsed;
    case "fs":
      if (parsed.path === "") throw invalidArgument(`store URI "${parsed.uri}": fs: needs a directory`);
      return parsed;
    case "postgres":
      parsePostgresUri(parsed.uri, { readFiles: false });
      return parsed;
    case "remote":
      checkRemoteUri(parsed.uri);
      return parsed;
    case "unknown":
      throw invalidArgument(
        `store URI "${redactStoreUri(parsed.uri)}" has an unknown scheme; expected one of ${STORE_URI_SCHEMES.join(", ")}`,
      );
  }
}

/** Opens the backend a store URI names; throws `invalid-argument` for an unknown or bad URI. */
export async function openStore(uri: string | StoreUri, options: OpenStoreOptions = {}): Promise<KVStore> {
  const parsed = checkStoreUri(uri);
  switch (parsed.kind) {
    case "memory":
      // A cache tier is never watched: it counts sequences but keeps no change.
      return new MemoryStore({ keepChanges: options.durability !== "cache" });
    case "sqlite":
      return options.durability === "cache"
        ? new SqliteStore(resolve(parsed.path), { synchronous: "NORMAL" })
        : new SqliteStore(resolve(parsed.path), { synchronous: "FULL", preallocateWal: true });
    case "fs":
      return FsStore.open(resolve(parsed.path), { fsync: options.durability !== "cache" });
    case "postgres":
      return openPostgresStore(parsed.uri).catch((error: unknown) => {
        // decodeURIComponent's own message ("URI malformed") would not say where.
        if (error instanceof URIError) throw invalidArgument(`store URI "${redactStoreUri(parsed.uri)}": a "%" in the user or password must start an escape; write a literal % as %25`);
        throw error;
      });
    case "remote":
      return openRemoteStore(parsed.uri);
    case "unknown":
      throw new Error("unreachable: checkStoreUri refuses unknown schemes");
  }
}
