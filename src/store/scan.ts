//! Walking every key of a store through `listAllKeys`, a page at a time.

import { DEFAULT_PAGE_SIZE, type CallOptions, type KVStore, type KeyRef, type KeyVersion } from "./types.js";

/** Every key of `store` with its version, in (primary, secondary, key) order. */
export async function* scanAllKeys(store: KVStore, options: CallOptions = {}): AsyncGenerator<KeyVersion, void, undefined> {
  let after: KeyRef | undefined;
  for (;;) {
    const page = await store.listAllKeys({ ...options, after, limit: DEFAULT_PAGE_SIZE });
    yield* page;
    if (page.length < DEFAULT_PAGE_SIZE) return;
    after = page.at(-1);
  }
}
