//! Reading a key whose absence is an answer, not an error (repairs, quotas, revisions).

import { StoreError } from "./errors.js";
import { isStateReader, type CallOptions, type KVStore, type KeyRef, type KeyState, type VersionedValue } from "./types.js";

/** The key's value, version and revision, or undefined when it is absent; other failures throw. */
export async function readOrAbsent(store: KVStore, ref: KeyRef, options?: CallOptions): Promise<VersionedValue | undefined> {
  try {
    return await store.readVersioned(ref, options);
  } catch (error) {
    if (error instanceof StoreError && error.code === "not-found") return undefined;
    throw error;
  }
}

/** The key's version and revision, or undefined when it is absent; without its value where the store can. */
export async function stateOrAbsent(store: KVStore, ref: KeyRef, options?: CallOptions): Promise<KeyState | undefined> {
  if (isStateReader(store)) return store.readState(ref);
  const stored = await readOrAbsent(store, ref, options);
  return stored && { version: stored.version, revision: stored.revision };
}
