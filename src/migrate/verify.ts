//! Verification of a migration: per (store, namespace) key counts and content hashes of the source
//! and the target, computed the same way on both sides and compared.
//!
//! A namespace's hash is a SHA-256 over its keys in sorted order, each contributing the SHA-256 of
//! its key and value bytes. A second hash also covers each key's version and revision; it is the
//! one compared when both sides keep versions (the fs backend does not: it reports 0 for both).

import { createHash } from "node:crypto";
import { StoreError } from "../store/errors.js";
import { scanAllKeys } from "../store/scan.js";
import { forEachConcurrent } from "./pool.js";
import type { KVStore, KeyVersion, NamespaceRef } from "../store/types.js";

export interface NamespaceDigest {
  readonly storeId: string;
  readonly primaryNamespace: string;
  readonly secondaryNamespace: string;
  readonly keys: number;
  readonly bytes: number;
  /** Hex SHA-256 over sorted keys and their values. */
  readonly contentHash: string;
  /** As `contentHash`, each key also contributing its version and revision. */
  readonly versionedHash: string;
}

export interface StoreDigest {
  /** By `namespaceId`. */
  readonly namespaces: Map<string, NamespaceDigest>;
  readonly keys: number;
  readonly bytes: number;
  /** Keys that reported a version other than 0 (unknown). */
  readonly versionedKeys: number;
}

/** A key of the namespace map: store id, primary and secondary namespace. */
export function namespaceId(ns: NamespaceRef & { readonly storeId: string }): string {
  return JSON.stringify([ns.storeId, ns.primaryNamespace, ns.secondaryNamespace]);
}

/** `store alice, namespace monitors/archive` (`namespace (root)` for the root namespace). */
export function describeNamespace(ns: NamespaceRef & { readonly storeId: string }): string {
  const path = [ns.primaryNamespace, ns.secondaryNamespace].filter((part) => part !== "").join("/");
  return `store ${ns.storeId}, namespace ${path === "" ? "(root)" : path}`;
}

interface Entry {
  readonly key: string;
  readonly plain: Buffer;
  readonly versioned: Buffer;
}

interface Accumulator {
  readonly ns: KeyVersion;
  readonly entries: Entry[];
  bytes: number;
  pending: number;
  listed: boolean;
}

function entryOf(key: string, value: Uint8Array, version: bigint, revision: bigint): Entry {
  const keyBytes = Buffer.from(key, "utf8");
  const lengths = Buffer.alloc(12);
  lengths.writeUInt32BE(keyBytes.length, 0);
  lengths.writeBigUInt64BE(BigInt(value.byteLength), 4);
  const plain = createHash("sha256").update(lengths).update(keyBytes).update(value).digest();
  const versioned = createHash("sha256").update(plain).update(`${version}:${revision}`).digest();
  return { key, plain, versioned };
}

function finalize(acc: Accumulator): NamespaceDigest {
  acc.entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const content = createHash("sha256");
  const versioned = createHash("sha256");
  for (const entry of acc.entries) {
    content.update(entry.plain);
    versioned.update(entry.versioned);
  }
  return {
    storeId: acc.ns.storeId,
    primaryNamespace: acc.ns.primaryNamespace,
    secondaryNamespace: acc.ns.secondaryNamespace,
    keys: acc.entries.length,
    bytes: acc.bytes,
    contentHash: content.digest("hex"),
    versionedHash: versioned.digest("hex"),
  };
}

export interface DigestOptions {
  readonly concurrency: number;
  /** Only these stores (each walked alone, so others are never read); every store when absent. */
  readonly storeIds?: readonly string[];
  readonly signal?: AbortSignal;
  /** Called after each key is read. */
  readonly onKey?: () => void;
}

/**
 * Reads every key of every store of `store` (values with bounded concurrency) and returns the
 * digest of each namespace. A namespace is hashed as soon as the walk has moved past it and its
 * reads are done, so memory holds the namespaces in progress only. A key removed between the
 * listing and its read is left out.
 */
export async function digestStore(store: KVStore, options: DigestOptions): Promise<StoreDigest> {
  const namespaces = new Map<string, NamespaceDigest>();
  const open = new Map<string, Accumulator>();
  let current: Accumulator | undefined;
  let keys = 0;
  let bytes = 0;
  let versionedKeys = 0;

  const settle = (acc: Accumulator): void => {
    if (!acc.listed || acc.pending > 0) return;
    const id = namespaceId(acc.ns);
    open.delete(id);
    const digest = finalize(acc);
    if (digest.keys > 0) namespaces.set(id, digest);
  };

  async function* walk(): AsyncGenerator<KeyVersion> {
    const { storeIds, signal } = options;
    if (storeIds === undefined) yield* scanAllKeys(store, { allStores: true, signal });
    else for (const storeId of [...storeIds].sort()) yield* scanAllKeys(store, { storeId, signal });
  }

  async function* listed(): AsyncGenerator<{ ref: KeyVersion; acc: Accumulator }> {
    for await (const ref of walk()) {
      const id = namespaceId(ref);
      if (current === undefined || namespaceId(current.ns) !== id) {
        if (current !== undefined) {
          current.listed = true;
          settle(current);
        }
        if (namespaces.has(id)) throw new Error(`the listing of ${describeNamespace(ref)} is not contiguous`);
        current = open.get(id) ?? { ns: ref, entries: [], bytes: 0, pending: 0, listed: false };
        open.set(id, current);
      }
      current.pending++;
      yield { ref, acc: current };
    }
    if (current !== undefined) {
      current.listed = true;
      settle(current);
    }
  }

  await forEachConcurrent(
    listed(),
    options.concurrency,
    async ({ ref, acc }) => {
      try {
        const stored = await store.readVersioned(ref, { signal: options.signal });
        acc.entries.push(entryOf(ref.key, stored.value, stored.version, stored.revision));
        acc.bytes += stored.value.byteLength;
        keys++;
        bytes += stored.value.byteLength;
        if (stored.version !== 0n) versionedKeys++;
      } catch (error) {
        if (!(error instanceof StoreError && error.code === "not-found")) throw error;
      } finally {
        acc.pending--;
        settle(acc);
        options.onKey?.();
      }
    },
    options.signal,
  );
  return { namespaces, keys, bytes, versionedKeys };
}

export interface Mismatch {
  readonly storeId: string;
  readonly primaryNamespace: string;
  readonly secondaryNamespace: string;
  /** One line: `store alice, namespace a/b: 3 keys on the source, 2 on the target`. */
  readonly message: string;
}

/** Every namespace whose key count or hash differs between the two sides, in namespace order. */
export function compareDigests(source: StoreDigest, target: StoreDigest, compareVersions: boolean): Mismatch[] {
  const ids = [...new Set([...source.namespaces.keys(), ...target.namespaces.keys()])].sort();
  const mismatches: Mismatch[] = [];
  for (const id of ids) {
    const a = source.namespaces.get(id);
    const b = target.namespaces.get(id);
    const ns = (a ?? b)!;
    const where = describeNamespace(ns);
    let problem: string | undefined;
    if ((a?.keys ?? 0) !== (b?.keys ?? 0)) {
      problem = `${a?.keys ?? 0} keys on the source, ${b?.keys ?? 0} on the target`;
    } else if (a!.contentHash !== b!.contentHash) {
      problem = `keys or values differ (SHA-256 ${a!.contentHash.slice(0, 12)}… on the source, ${b!.contentHash.slice(0, 12)}… on the target)`;
    } else if (compareVersions && a!.versionedHash !== b!.versionedHash) {
      problem = "values match but versions or revisions differ";
    }
    if (problem !== undefined) {
      mismatches.push({
        storeId: ns.storeId,
        primaryNamespace: ns.primaryNamespace,
        secondaryNamespace: ns.secondaryNamespace,
        message: `${where}: ${problem}`,
      });
    }
  }
  return mismatches;
}
