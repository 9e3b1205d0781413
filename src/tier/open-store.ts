//! Store URIs: `memory:`, `sqlite:PATH`, `fs:DIR` (an LDK data directory), `postgres://…`,
//! `grpc://host:port`, `grpcs://host:port?…`.

import { resolve } from "node:path";
import { openRemoteStore } from "../remote/remote-store.js";
import { invalidArgument } from "../store/errors.js";
import { FsStore } from "../store/fs.js";
import { MemoryStore } from "../store/memory.js";
import { openPostgresStore } from "../store/postgres.js";
import { redactStoreUri } from "../store/redact.js";
import { SqliteStore } from "../store/sqlite.js";
import type { KVStore } from "../store/types.js";

export interface OpenStoreOptions {
  /**
   * `durable` (default) fsyncs every commit; `cache` (the ephemeral tier: rebuildable data) lets
   * SQLite (and fs:) skip the fsync and may lose the latest writes on power loss.
   */
  readonly durability?: "durable" | "cache";
}

/** The schemes `openStore` understands, for help texts and error messages. */
export const STORE_URI_SCHEMES = [
  "memory:",
  "sqlite:PATH",
  "fs:DIR",
  "postgres://USER@HOST:PORT/DB",
  "grpc://HOST:PORT",
  "grpcs://HOST:PORT",
] as const;

/** Opens the backend a store URI names; throws `invalid-argument` for an unknown or bad URI. */
export async function openStore(uri: string, options: OpenStoreOptions = {}): Promise<KVStore> {
  const colon = uri.indexOf(":");
  const scheme = colon < 0 ? "" : uri.slice(0, colon);
  const rest = colon < 0 ? "" : uri.slice(colon + 1);
  switch (scheme) {
    case "memory":
      if (rest !== "") throw invalidArgument(`store URI "${uri}": memory: takes no path`);
      return new MemoryStore();
    case "sqlite":
      if (rest === "") throw invalidArgument(`store URI "${uri}": sqlite: needs a file path`);
      return options.durability === "cache"
        ? new SqliteStore(resolve(rest), { synchronous: "NORMAL" })
        : new SqliteStore(resolve(rest), { synchronous: "FULL", preallocateWal: true });
    case "fs":
      if (rest === "") throw invalidArgument(`store URI "${uri}": fs: needs a directory`);
      return FsStore.open(resolve(rest), { fsync: options.durability !== "cache" });
    case "postgres":
    case "postgresql":
      return openPostgresStore(uri).catch((error: unknown) => {
        // decodeURIComponent's own message ("URI malformed") would not say where.
        if (error instanceof URIError) throw invalidArgument(`store URI "${redactStoreUri(uri)}": a "%" in the user or password must start an escape; write a literal % as %25`);
        throw error;
      });
    case "grpc":
    case "grpcs":
      return openRemoteStore(uri);
    default:
      throw invalidArgument(
        `store URI "${redactStoreUri(uri)}" has an unknown scheme; expected one of ${STORE_URI_SCHEMES.join(", ")}`,
      );
  }
}
