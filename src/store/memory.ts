//! The in-memory backend: for tests and the ephemeral tier. Nothing survives a restart.
//!
//! ListPage order: newest-created first (an overwrite keeps a key's place).

import { effectivePageSize } from "../limits.js";
import { notFound } from "./errors.js";
import { MemoryChangeLog } from "./memory-change-log.js";
import { appliedVersion, checkQuota, firstFailedCheck, isStale, stateAfterWrite, usageChange, type StoredState } from "./mutation-rules.js";
import { allKeysPage, allKeysStart, decodeSequenceToken, encodePageToken } from "./page-token.js";
import { belongsTo, groupChange, UsageChanges, usageGroupOf, type UsageGroup } from "./usage-group.js";
import {
  compareKeys,
  storeIdOf,
  VersionedReads,
  type AllKeysPage,
  type AllKeysRequest,
  type BackupLedger,
  type ChangeLog,
  type CommittedChanges,
  type ChangeRetention,
  type ChangesPage,
  type ChangesRequest,
  type GroupUsage,
  type KVStore,
  type KeyRef,
  type KeyState,
  type KeyVersion,
  type ListOptions,
  type MutationOptions,
  type MutationOutcome,
  type NamespaceRef,
  type Page,
  type PageRequest,
  type Quota,
  type RemoveOptions,
  type SnapshotSource,
  type StoredRecord,
  type StoreUsage,
  type StoreUsageReader,
  type TxnRequest,
  type TxnResult,
  type VersionedValue,
} from "./types.js";
import { formatPath, validateKey, validateNamespace, validateTxn } from "./validate.js";

interface Entry extends StoredState {
  readonly key: string;
  /** Creation sequence: unique and increasing, kept across overwrites. */
  readonly seq: number;
  value: Uint8Array;
  version: bigint;
  revision: bigint;
  live: boolean;
}

/** The keys of one namespace pair of one store, by name and in creation order. */
class Namespace {
  readonly byKey = new Map<string, Entry>();
  /** Ascending `seq`; removed entries stay (live = false) until compaction. */
  private order: Entry[] = [];
  private dead = 0;

  constructor(readonly ref: Required<NamespaceRef>) {}

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

/** Identity of a namespace pair inside the maps (NUL never appears in a valid name). */
function namespaceId(ns: NamespaceRef): string {
  return `${storeIdOf(ns)}\0${ns.primaryNamespace}\0${ns.secondaryNamespace}`;
}

function keyId(ref: KeyRef): string {
  return `${namespaceId(ref)}\0${ref.key}`;
}

export interface MemoryStoreOptions {
  /** Keep changes for Watch (default true); a cache tier nobody watches turns it off. */
  readonly keepChanges?: boolean;
}

export class MemoryStore extends VersionedReads implements KVStore, BackupLedger, StoreUsageReader, SnapshotSource, ChangeLog {
  private readonly namespaces = new Map<string, Namespace>();
  /** Keys the backup tier owes, with the version recorded (see `BackupLedger`). */
  private readonly owed = new Map<string, KeyVersion>();
  /** Each store's keys and value bytes, changed by every mutation as it applies. */
  private readonly usage = new Map<string, { keys: number; bytes: number }>();
  private nextSeq = 1;
  private highest = 0n;
  private readonly changes: MemoryChangeLog;

  constructor(options: MemoryStoreOptions = {}) {
    super();
    this.changes = new MemoryChangeLog(options.keepChanges ?? true);
  }

  private namespace(ns: NamespaceRef, create: true): Namespace;
  private namespace(ns: NamespaceRef, create: false): Namespace | undefined;
  private namespace(ns: NamespaceRef, create: boolean): Namespace | undefined {
    const id = namespaceId(ns);
    let found = this.namespaces.get(id);
    if (found === undefined && create) {
      const ref = { storeId: storeIdOf(ns), primaryNamespace: ns.primaryNamespace, secondaryNamespace: ns.secondaryNamespace };
      found = new Namespace(ref);
      this.namespaces.set(id, found);
    }
    return found;
  }

  private entry(ref: KeyRef): Entry | undefined {
    return this.namespace(ref, false)?.byKey.get(ref.key);
  }

  async readVersioned(ref: KeyRef): Promise<VersionedValue> {
    validateKey(ref, "read");
    const entry = this.entry(ref);
    if (entry === undefined) throw notFound("read", formatPath(ref));
    return { value: entry.value.slice(), version: entry.version, revision: entry.revision };
  }

  async readState(ref: KeyRef): Promise<KeyState | undefined> {
    validateKey(ref, "read");
    const entry = this.entry(ref);
    return entry && { version: entry.version, revision: entry.revision };
  }

  async write(ref: KeyRef, value: Uint8Array, options: MutationOptions = {}): Promise<MutationOutcome> {
    validateKey(ref, "write");
    const existing = this.entry(ref);
    if (!isStale(existing, options) && options.quota !== undefined) {
      const changes = new UsageChanges();
      changes.add(storeIdOf(ref), usageChange(existing?.value.byteLength, value.byteLength));
      this.checkQuotas(changes, options.quota);
    }
    let version = options.version;
    const outcome = this.applyWrite(ref, value, { ...options, onVersion: (v) => ((version = v), options.onVersion?.(v)) });
    this.recordOwed(ref, { version, owedToBackup: options.owedToBackup });
    this.changes.flush();
    return outcome;
  }

  async remove(ref: KeyRef, options: RemoveOptions = {}): Promise<MutationOutcome> {
    validateKey(ref, "remove");
    let version = options.version;
    const onVersion = (v: bigint): void => ((version = v), options.onVersion?.(v));
    const outcome = this.applyRemove(ref, options.exact ? { onVersion } : { ...options, onVersion });
    this.recordOwed(ref, { version, owedToBackup: options.owedToBackup });
    this.changes.flush();
    return outcome;
  }

  /** Throws `quotaExceeded` when `changes` would take a usage group past `quota`. */
  private checkQuotas(changes: UsageChanges, quota: Quota): void {
    for (const { group, stores } of changes.byGroup()) {
      checkQuota(group, this.usageOfGroup(group), groupChange(stores, (storeId) => this.usage.get(storeId)?.keys ?? 0), quota);
    }
  }

  private usageOfGroup(group: UsageGroup): GroupUsage {
    let usage = { keys: 0, bytes: 0, stores: 0 };
    for (const [storeId, { keys, bytes }] of this.usage) {
      if (belongsTo(group, storeId)) usage = { keys: usage.keys + keys, bytes: usage.bytes + bytes, stores: usage.stores + (keys > 0 ? 1 : 0) };
    }
    return usage;
  }

  private changeUsage(storeId: string, storedBytes: number | undefined, newBytes: number | undefined): void {
    let usage = this.usage.get(storeId);
    if (usage === undefined) {
      usage = { keys: 0, bytes: 0 };
      this.usage.set(storeId, usage);
    }
    const change = usageChange(storedBytes, newBytes);
    usage.keys += change.keys;
    usage.bytes += change.bytes;
    if (usage.keys === 0) this.usage.delete(storeId);
  }

  private applyWrite(ref: KeyRef, value: Uint8Array, options: Pick<MutationOptions, "version" | "plain" | "revision" | "exact" | "onVersion">): MutationOutcome {
    const existing = this.entry(ref);
    if (isStale(existing, options)) return "stale";
    const state = stateAfterWrite(existing, options);
    const copy = value.slice();
    if (state.version > this.highest) this.highest = state.version;
    this.changeUsage(storeIdOf(ref), existing?.value.byteLength, value.byteLength);
    if (existing === undefined) {
      this.namespace(ref, true).add({ key: ref.key, seq: this.nextSeq++, value: copy, ...state, live: true });
    } else {
      existing.value = copy;
      existing.version = state.version;
      existing.revision = state.revision;
    }
    // Values are replaced, never changed in place: the entry and the log share one copy.
    this.changes.append(ref, "put", state, copy);
    options.onVersion?.(state.version);
    return "applied";
  }

  private applyRemove(ref: KeyRef, options: Pick<MutationOptions, "version" | "plain" | "exact" | "onVersion">): MutationOutcome {
    const ns = this.namespace(ref, false);
    const existing = ns?.byKey.get(ref.key);
    if (isStale(existing, options)) return "stale";
    const version = appliedVersion(existing, options);
    if (version !== undefined) options.onVersion?.(version);
    if (ns === undefined || existing === undefined) return "applied";
    if (version !== undefined && version > this.highest) this.highest = version;
    this.changeUsage(storeIdOf(ref), existing.value.byteLength, undefined);
    ns.delete(existing);
    this.changes.append(ref, "remove", { version: version ?? 0n, revision: 0n }, undefined);
    if (ns.byKey.size === 0) this.namespaces.delete(namespaceId(ref));
    return "applied";
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    validateTxn(request);
    const failedCheck = firstFailedCheck(request.checks, (check) => this.entry(check));
    if (failedCheck >= 0) return { succeeded: false, failedCheck };
    this.checkBatchQuota(request);
    const outcomes: MutationOutcome[] = [];
    const revisions: bigint[] = [];
    const versions: bigint[] = [];
    for (const operation of request.operations) {
      const options = {
        version: operation.version ?? request.version,
        plain: request.plain && operation.version === undefined,
        exact: request.exact,
        onVersion: (v: bigint) => versions.push(v),
      };
      const before = versions.length;
      if (operation.kind === "write") {
        outcomes.push(this.applyWrite(operation, operation.value, { ...options, revision: operation.revision }));
        revisions.push(this.entry(operation)?.revision ?? 0n);
      } else {
        outcomes.push(this.applyRemove(operation, options));
        revisions.push(0n);
      }
      // A stale operation reports the version it lost to; an unversioned one 0.
      if (versions.length === before) versions.push(this.entry(operation)?.version ?? options.version ?? 0n);
      this.recordOwed(operation, { version: versions.at(-1), owedToBackup: request.owedToBackup });
    }
    this.changes.flush();
    return { succeeded: true, outcomes, revisions, versions };
  }

  /** A Txn's operations against their groups' quotas, together (all keys are distinct). */
  private checkBatchQuota(request: TxnRequest): void {
    if (request.quota === undefined) return;
    const changes = new UsageChanges();
    for (const operation of request.operations) {
      const existing = this.entry(operation);
      if (isStale(existing, { version: operation.version ?? request.version, plain: request.plain && operation.version === undefined })) continue;
      changes.add(storeIdOf(operation), usageChange(existing?.value.byteLength, operation.kind === "write" ? operation.value.byteLength : undefined));
    }
    this.checkQuotas(changes, request.quota);
  }

  async list(nsRef: NamespaceRef, options: ListOptions = {}): Promise<string[]> {
    validateNamespace(nsRef, "list");
    const keys = this.namespace(nsRef, false)?.byKey.keys() ?? [];
    return Array.from(keys).slice(0, options.limit);
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

  async listAllKeys(request: AllKeysRequest = {}): Promise<AllKeysPage> {
    if (!request.allStores) validateNamespace({ storeId: storeIdOf(request), primaryNamespace: "", secondaryNamespace: "" }, "list all keys");
    const start = allKeysStart(request);
    const limit = effectivePageSize(request.limit);
    const all: KeyVersion[] = [];
    for (const ns of this.namespaces.values()) {
      if (!request.allStores && ns.ref.storeId !== start.storeId) continue;
      for (const entry of ns.byKey.values()) {
        const key = { ...ns.ref, key: entry.key, version: entry.version, revision: entry.revision };
        if (compareKeys(key, start) > 0) all.push(key);
      }
    }
    return allKeysPage(all.sort(compareKeys).slice(0, limit + 1), limit);
  }

  private recordOwed(ref: KeyRef, options: Pick<MutationOptions, "version" | "owedToBackup">): void {
    if (!options.owedToBackup) return;
    const id = keyId(ref);
    const version = options.version ?? 0n;
    const known = this.owed.get(id);
    if (known !== undefined && known.version >= version) return;
    const { primaryNamespace, secondaryNamespace, key } = ref;
    this.owed.set(id, { storeId: storeIdOf(ref), primaryNamespace, secondaryNamespace, key, version, revision: 0n });
  }

  async settleOwed(ref: KeyRef, version: bigint): Promise<void> {
    const id = keyId(ref);
    const known = this.owed.get(id);
    if (known !== undefined && known.version <= version) this.owed.delete(id);
  }

  async listOwed(limit: number, after?: KeyRef): Promise<KeyVersion[]> {
    return [...this.owed.values()]
      .filter((key) => after === undefined || compareKeys(key, after) > 0)
      .sort(compareKeys)
      .slice(0, limit);
  }

  async countOwed(): Promise<number> {
    return this.owed.size;
  }

  async storeUsage(storeId: string): Promise<StoreUsage> {
    const usage = this.usage.get(storeId);
    return { keys: usage?.keys ?? 0, bytes: usage?.bytes ?? 0 };
  }

  async groupUsage(storeId: string): Promise<GroupUsage> {
    return this.usageOfGroup(usageGroupOf(storeId));
  }

  async recountUsage(storeId: string): Promise<{ recorded: StoreUsage; counted: StoreUsage }> {
    const recorded = await this.storeUsage(storeId);
    let keys = 0;
    let bytes = 0;
    for (const ns of this.namespaces.values()) {
      if (ns.ref.storeId !== storeId) continue;
      keys += ns.byKey.size;
      for (const entry of ns.byKey.values()) bytes += entry.value.byteLength;
    }
    if (keys === 0) this.usage.delete(storeId);
    else this.usage.set(storeId, { keys, bytes });
    return { recorded, counted: { keys, bytes } };
  }

  readChanges(request: ChangesRequest): Promise<ChangesPage> {
    return this.changes.readChanges(request);
  }

  changeHeads(): Promise<Map<string, bigint>> {
    return this.changes.changeHeads();
  }

  pruneChanges(retention: ChangeRetention, limit: number, now?: number): Promise<number> {
    return this.changes.pruneChanges(retention, limit, now);
  }

  onChanges(listener: (committed: CommittedChanges) => void): () => void {
    return this.changes.onChanges(listener);
  }

  async highestVersion(): Promise<bigint> {
    return this.highest;
  }

  /** Every key, collected in one synchronous pass (no mutation can interleave) before the first is yielded. */
  async *snapshotRecords(): AsyncGenerator<StoredRecord> {
    const records: StoredRecord[] = [];
    for (const ns of this.namespaces.values()) {
      // A write replaces an entry's value array, never changes it: holding the reference is a copy.
      for (const entry of ns.byKey.values()) records.push({ ...ns.ref, key: entry.key, value: entry.value, version: entry.version, revision: entry.revision });
    }
    yield* records.sort(compareKeys);
  }

  async close(): Promise<void> {
    this.namespaces.clear();
  }
}
