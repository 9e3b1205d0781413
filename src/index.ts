//! The package entry point: what another Node program imports to talk to or embed tierkv.

export { TierkvClient, type ClientOptions } from "./client/client.js";
export { TierkvAdminClient } from "./client/admin-client.js";
export { StoreError, type StoreErrorCode } from "./store/errors.js";
export type {
  AllKeysRequest,
  CallOptions,
  KeyVersion,
  VersionedValue,
  KVStore,
  KeyRef,
  MutationOptions,
  NamespaceRef,
  Page,
  PageRequest,
  RemoveOptions,
} from "./store/types.js";
export { MAX_NAME_LENGTH, parseKeyPath, parseNamespacePath, validateKey, validateNamespace } from "./store/validate.js";
export { openStore, type OpenStoreOptions } from "./app/open-store.js";
export { MemoryStore } from "./store/memory.js";
export { SqliteStore } from "./store/sqlite.js";
export { TierStore, type BackupPolicy, type BackupStatus, type TierStoreOptions } from "./tier/tier-store.js";
export { startServer, type RunningServer, type ServerOptions } from "./server/server.js";
export * from "../gen/tierkv/v1/kvstore_pb.js";
export * from "../gen/tierkv/v1/admin_pb.js";
