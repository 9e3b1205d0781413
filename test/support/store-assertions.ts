//! Assertions shared by the conformance suite and the tier tests.

import { expect } from "vitest";
import { StoreError } from "../../src/store/errors.js";
import {
  storeIdOf,
  type AllKeysRequest,
  type KVStore,
  type KeyRef,
  type KeyVersion,
  type NamespaceRef,
} from "../../src/store/types.js";

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

/**
 * Every key `listAllKeys` returns for `request`, walking pages of `limit` until the token is
 * empty, and how many pages that took.
 */
export async function walkAllKeys(
  store: KVStore,
  request: Pick<AllKeysRequest, "storeId" | "allStores"> = {},
  limit?: number,
): Promise<{ keys: KeyVersion[]; pages: number }> {
  const keys: KeyVersion[] = [];
  let pageToken = "";
  for (let pages = 1; pages <= 10_000; pages++) {
    const page = await store.listAllKeys({ ...request, pageToken, limit });
    if (limit !== undefined) expect(page.keys.length).toBeLessThanOrEqual(limit);
    keys.push(...page.keys);
    if (page.nextPageToken === "") return { keys, pages };
    pageToken = page.nextPageToken;
  }
  throw new Error(`listAllKeys(${JSON.stringify(request)}) did not end within 10,000 pages`);
}

/** `store:primary/secondary/key`: one string per address, for readable comparisons. */
export function addressOf(ref: KeyRef): string {
  return `${storeIdOf(ref)}:${ref.primaryNamespace}/${ref.secondaryNamespace}/${ref.key}`;
}

export interface SnapshotEntry {
  readonly address: string;
  readonly version: bigint;
  readonly revision: bigint;
  /** The value, hex-encoded. */
  readonly value: string;
}

/** Every key of every store with its version, revision and value: compare two to prove nothing changed. */
export async function snapshot(store: KVStore): Promise<SnapshotEntry[]> {
  const { keys } = await walkAllKeys(store, { allStores: true });
  const entries: SnapshotEntry[] = [];
  for (const key of keys) {
    const stored = await store.readVersioned(key);
    expect(stored.version).toBe(key.version);
    expect(stored.revision).toBe(key.revision);
    entries.push({ address: addressOf(key), version: key.version, revision: key.revision, value: Buffer.from(stored.value).toString("hex") });
  }
  return entries;
}

/** A value as UTF-8 text. */
export function text(value: Uint8Array): string {
  return Buffer.from(value).toString("utf8");
}
