//! Store URIs: `memory:`, `sqlite:PATH`, `fs:DIR` (an LDK data directory), `postgres://…`,
//! `grpc://host:port`, `grpcs://host:port?…`.

import { resolve } from "node:path";
import { checkRemoteUri, openRemoteStore } from "../remote/remote-store.js";
import { invalidArgument } from "../store/errors.js";
import { FsStore } from "../store/fs.js";
import { MemoryStore } from "../store/memory.js";
import { openPostgresStore, parsePostgresUri } from "../store/postgres.js";
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

/** The scheme of a store URI (before the first `:`; empty when there is none). */
function schemeOf(uri: string): { scheme: string; rest: string } {
  const colon = uri.indexOf(":");
  return colon < 0 ? { scheme: "", rest: "" } : { scheme: uri.slice(0, colon), rest: uri.slice(colon + 1) };
}

/**
 * Checks a store URI without opening anything or reading the files it names (serve runs it
 * before opening its tiers, and `--print-config` runs it alone); throws `invalid-argument`.
 */
export function checkStoreUri(uri: string): void {
  const { scheme, rest } = schemeOf(uri);
  switch (scheme) {
    case "memory":
      if (rest !== "") throw invalidArgument(`store URI "${uri}": memory: takes no path`);
      return;
    case "sqlite":
      if (rest === "") throw invalidArgument(`store URI "${uri}": sqlite: needs a file path`);
      return;
    case "fs":
      if (rest === "") throw invalidArgument(`store URI "${uri}": fs: needs a directory`);
      return;
    case "postgres":
    case "postgresql":
      parsePostgresUri(uri, { readFiles: false });
      return;
    case "grpc":
    case "grpcs":
      checkRemoteUri(uri);
      return;
    default:
      throw invalidArgument(
        `store URI "${redactStoreUri(uri)}" has an unknown scheme; expected one of ${STORE_URI_SCHEMES.join(", ")}`,
      );
  }
}

/** Opens the backend a store URI names; throws `invalid-argument` for an unknown or bad URI. */
export async function openStore(uri: string, options: OpenStoreOptions = {}): Promise<KVStore> {
  checkStoreUri(uri);
  const { scheme, rest } = schemeOf(uri);
  switch (scheme) {
    case "memory":
      return new MemoryStore();
    case "sqlite":
      return options.durability === "cache"
        ? new SqliteStore(resolve(rest), { synchronous: "NORMAL" })
        : new SqliteStore(resolve(rest), { synchronous: "FULL", preallocateWal: true });
    case "fs":
      return FsStore.open(resolve(rest), { fsync: options.durability !== "cache" });
    case "postgres":
    case "postgresql":
      return openPostgresStore(uri).catch((error: unknown) => {
        // decodeURIComponent's own message ("URI malformed") would not say where.
        if (error instanceof URIError) throw invalidArgument(`store URI "${redactStoreUri(uri)}": a "%" in the user or password must start an escape; write a literal % as %25`);
        throw error;
      });
    default:
      // grpc: or grpcs:, the only schemes left that checkStoreUri lets through.
      return openRemoteStore(uri);
  }
}
