//! Reading a key whose absence is an answer, not an error (repairs, quotas, revisions).

import { StoreError } from "./errors.js";
import type { CallOptions, KVStore, KeyRef, VersionedValue } from "./types.js";

/** The key's value, version and revision, or undefined when it is absent; other failures throw. */
export async function readOrAbsent(store: KVStore, ref: KeyRef, options?: CallOptions): Promise<VersionedValue | undefined> {
  try {
    return await store.readVersioned(ref, options);
  } catch (error) {
    if (error instanceof StoreError && error.code === "not-found") return undefined;
    throw error;
  }
}
