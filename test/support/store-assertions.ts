//! Assertions shared by the conformance suite and the tier tests.

import { expect } from "vitest";
import { StoreError } from "../../src/store/errors.js";
import type { KVStore, NamespaceRef } from "../../src/store/types.js";

/** The StoreError `promise` rejects with; fails the test if it resolves or throws anything else. */
export async function errorOf(promise: Promise<unknown>): Promise<StoreError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(StoreError);
    return error as StoreError;
  }
  throw new Error("expected the call to fail");
}

/** Every key of `namespace`, walking `listPage` with `pageSize` until the token is empty. */
export async function walkPages(store: KVStore, namespace: NamespaceRef, pageSize: number): Promise<string[]> {
  const seen: string[] = [];
  let pageToken = "";
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await store.listPage(namespace, { pageSize, pageToken });
    expect(page.keys.length).toBeLessThanOrEqual(pageSize);
    seen.push(...page.keys);
    if (page.nextPageToken === "") return seen;
    pageToken = page.nextPageToken;
  }
  throw new Error(`listPage of ${JSON.stringify(namespace)} did not end within 10,000 pages`);
}
