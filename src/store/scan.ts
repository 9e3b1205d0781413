//! Walking every key of a store through `listAllKeys`, a page at a time.

import { DEFAULT_PAGE_SIZE } from "../limits.js";
import type { AllKeysRequest, KVStore, KeyVersion } from "./types.js";

/** Every key of `store` (one store id, or all) with its version, in key order. */
export async function* scanAllKeys(
  store: KVStore,
  request: Omit<AllKeysRequest, "pageToken" | "limit"> = {},
): AsyncGenerator<KeyVersion, void, undefined> {
  let pageToken = "";
  do {
    const page = await store.listAllKeys({ ...request, pageToken, limit: DEFAULT_PAGE_SIZE });
    yield* page.keys;
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
}
