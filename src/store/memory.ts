//! The in-memory backend: for tests and the ephemeral tier. Nothing survives a restart.
//!
//! ListPage order: newest-created first (an overwrite keeps a key's place).

import { notFound } from "./errors.js";
import { decodeSequenceToken, encodePageToken } from "./page-token.js";
import {
  compareKeys,
  effectivePageSize,
  VersionedReads,
  type AllKeysRequest,
  type KVStore,
  type KeyVersion,
  type VersionedValue,
  type KeyRef,
  type MutationOptions,
  type NamespaceRef,
  type Page,
  type PageRequest,
  type RemoveOptions,
} from "./types.js";
import { formatPath, validateKey, validateNamespace } from "./validate.js";

interface Entry {
  readonly key: string;
  /** Creation sequence: unique and increasing, kept across overwrites. */
  readonly seq: number;
  value: Uint8Array;
  version: bigint;
  live: boolean;
}

/** The keys of one namespace pair, by name and in creation order. */
class Namespace {
  readonly byKey = new Map<string, Entry>();
  /** Ascending `seq`; removed entries stay (live = false) until compaction. */
  private order: Entry[] = [];
  private dead = 0;

  add(entry: Entry): void {
    this.byKey.set(entry.key, entry);
    this.order.push(entry);
  }

  delete(entry: Entry): void {
    entry.live = false;
    this.byKey.delete(entry.key);
    // Compact once half the array is dead, so removal stays amortised O(1).
    if (++this.dead * 2 > this.order.length) {
      this.order = this.order.filter((e) => e.live);
      this.dead = 0;
    }
  }

  /** Up to `limit` live entries with seq < `before`, newest first, and whether more remain. */
  newestBefore(before: number, limit: number): { entries: Entry[]; more: boolean } {
    // Binary search: the first index whose seq is >= before.
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.order[mid]!.seq < before) lo = mid + 1;
      else hi = mid;
    }
    const entries: Entry[] = [];
    let i = lo - 1;
    for (; i >= 0 && entries.length < limit; i--) {
      const e = this.order[i]!;
      if (e.live) entries.push(e);
    }
    while (i >= 0 && !this.order[i]!.live) i--;
    return { entries, more: i >= 0 };
  }
}

function namespaceId(ns: NamespaceRef): string {
  return `${ns.primaryNamespace}/${ns.secondaryNamespace}`;
}

export class MemoryStore extends VersionedReads implements KVStore {
  private readonly namespaces = new Map<string, Namespace>();
  private nextSeq = 1;

  private namespace(ns: NamespaceRef, create: true): Namespace;
  private namespace(ns: NamespaceRef, create: false): Namespace | undefined;
  private namespace(ns: NamespaceRef, create: boolean): Namespace | undefined {
    const id = namespaceId(ns);
    let found = this.namespaces.get(id);
    if (found === undefined && create) {
      found = new Namespace();
      this.namespaces.set(id, found);
    }
    return found;
  }

  async readVersioned(ref: KeyRef): Promise<VersionedValue> {
    validateKey(ref, "read");
    const entry = this.namespace(ref, false)?.byKey.get(ref.key);
    if (entry === undefined) throw notFound("read", formatPath(ref));
    return { value: entry.value.slice(), version: entry.version };
  }

  async write(ref: KeyRef, value: Uint8Array, options: MutationOptions = {}): Promise<void> {
    validateKey(ref, "write");
    const ns = this.namespace(ref, true);
    const existing = ns.byKey.get(ref.key);
    const version = options.version;
    if (existing === undefined) {
      ns.add({ key: ref.key, seq: this.nextSeq++, value: value.slice(), version: version ?? 0n, live: true });
    } else if (version === undefined || version > existing.version) {
      existing.value = value.slice();
      if (version !== undefined) existing.version = version;
    }
  }

  async remove(ref: KeyRef, options: RemoveOptions = {}): Promise<void> {
    validateKey(ref, "remove");
    const ns = this.namespace(ref, false);
    const existing = ns?.byKey.get(ref.key);
    if (ns === undefined || existing === undefined) return;
    if (options.version !== undefined && options.version <= existing.version) return;
    ns.delete(existing);
    if (ns.byKey.size === 0) this.namespaces.delete(namespaceId(ref));
  }

  async list(nsRef: NamespaceRef): Promise<string[]> {
    validateNamespace(nsRef, "list");
    return [...(this.namespace(nsRef, false)?.byKey.keys() ?? [])];
  }

  async listPage(nsRef: NamespaceRef, page: PageRequest = {}): Promise<Page> {
    validateNamespace(nsRef, "list");
    const before = page.pageToken ? decodeSequenceToken(nsRef, page.pageToken) : Number.MAX_SAFE_INTEGER;
    const ns = this.namespace(nsRef, false);
    if (ns === undefined) return { keys: [], nextPageToken: "" };
    const { entries, more } = ns.newestBefore(before, effectivePageSize(page.pageSize));
    const last = entries.at(-1);
    return {
      keys: entries.map((e) => e.key),
      nextPageToken: more && last ? encodePageToken(nsRef, String(last.seq)) : "",
    };
  }

  async listAllKeys(request: AllKeysRequest = {}): Promise<KeyVersion[]> {
    const all: KeyVersion[] = [];
    for (const [id, ns] of this.namespaces) {
      const [primaryNamespace, secondaryNamespace] = id.split("/") as [string, string];
      for (const entry of ns.byKey.values()) {
        const key = { primaryNamespace, secondaryNamespace, key: entry.key, version: entry.version };
        if (request.after === undefined || compareKeys(key, request.after) > 0) all.push(key);
      }
    }
    return all.sort(compareKeys).slice(0, effectivePageSize(request.limit));
  }

  async close(): Promise<void> {
    this.namespaces.clear();
  }
}
