//! The KVStore contract (docs/contract.md §1–§3): the one interface every backend, the tiered
//! store and the client implement.

/** The store (tenant) a reference belongs to when it names none. */
export const DEFAULT_STORE_ID = "default";

/**
 * A namespace pair inside one store (tenant). `("", "")` is the root namespace. Field names match
 * the wire messages. `storeId` absent means `DEFAULT_STORE_ID`; the server always sets it from the
 * caller's identity, so one tenant can never name another's keys.
 */
export interface NamespaceRef {
  readonly storeId?: string;
  readonly primaryNamespace: string;
  readonly secondaryNamespace: string;
}

/** The address of one value. */
export interface KeyRef extends NamespaceRef {
  readonly key: string;
}

/** Options every call accepts. */
export interface CallOptions {
  /** Absolute deadline in ms since the epoch; work (including retries) stops there. */
  readonly deadline?: number;
  /** Fires when the caller went away: waits end early, nothing new starts. */
  readonly signal?: AbortSignal;
}

/**
 * A tenant's limits (contract §6.3, §7), held by the usage group of the store a mutation writes
 * (`usageGroupOf`: a VSS user's stores together, any other store alone).
 */
export interface Quota {
  readonly maxKeys?: number;
  readonly maxBytes?: number;
  /** Most store ids of the group that hold keys: a mutation that would fill one more is refused. */
  readonly maxStores?: number;
}

/** Options of a mutation (write or remove). */
export interface MutationOptions extends CallOptions {
  /**
   * The mutation's version (contract §3). A backend that stores versions applies the mutation
   * only when it is higher than the stored one; undefined means "apply unconditionally".
   */
  readonly version?: bigint;
  /**
   * A mutation without a caller version (contract §3.1): `version` is only a proposal, and the
   * backend stores `max(version, stored version + 1)` in the statement or transaction that applies
   * it, so it always applies, whatever another instance's clock said.
   */
  readonly plain?: boolean;
  /** Called with the version the backend stored (or removed at) once the mutation is applied. */
  readonly onVersion?: (version: bigint) => void;
  /**
   * A `StateReporter` calls it once the mutation is committed: with the version and revision it
   * stored (a remove: the version it removed at, revision 0n), or, for a stale mutation, with the
   * stored state that made it stale. Not called for a mutation applied without a version.
   */
  readonly onState?: (state: KeyState) => void;
  /**
   * Mirroring and migration only: store exactly this revision instead of counting on from the
   * stored one (contract §3, revisions). Ignored by removes.
   */
  readonly revision?: bigint;
  /**
   * Repair and migration only: store exactly this `version` and `revision` (0n when absent),
   * whatever is stored; never stale. Needs the `replicate` role over the wire.
   */
  readonly exact?: boolean;
  /**
   * Record, in the same commit as the mutation, that the backup tier does not have it yet
   * (`BackupLedger`). Only the tiered store sets it, and only on a primary that is a ledger.
   */
  readonly owedToBackup?: boolean;
  /**
   * The tenant's limits: the backend checks them against its usage record in the transaction
   * that applies the mutation, and refuses one that would pass them (`quotaExceeded`), changing
   * nothing. A mutation that does not grow usage is never refused.
   */
  readonly quota?: Quota;
}

export interface RemoveOptions extends MutationOptions {
  /** LDK's lazy remove: the store may defer the deletion (contract §2). */
  readonly lazy?: boolean;
}

/**
 * What a mutation did. `stale`: a mutation with a higher version had already been applied, so
 * this one was acknowledged without changing anything (contract §3). Removing an absent key is
 * `applied`.
 */
export type MutationOutcome = "applied" | "stale";

export interface ListOptions extends CallOptions {
  /** At most this many keys (callers that refuse larger namespaces ask for one more than they allow). */
  readonly limit?: number;
}

export interface PageRequest extends CallOptions {
  /** Largest number of keys to return; undefined or 0 means the store's default. */
  readonly pageSize?: number;
  /** The previous page's `nextPageToken`; undefined or "" for the first page. */
  readonly pageToken?: string;
}

export interface Page {
  readonly keys: string[];
  /** Empty when this was the last page. */
  readonly nextPageToken: string;
}

/**
 * A value with the version of the mutation that wrote it (0n when the store does not know) and
 * its revision: 1 when the key was created, +1 on every write since (0n when unknown).
 */
export interface VersionedValue {
  readonly value: Uint8Array;
  readonly version: bigint;
  readonly revision: bigint;
}

/** A key's address (its store always named) with its version and revision. */
export interface KeyVersion extends KeyRef {
  readonly storeId: string;
  readonly version: bigint;
  readonly revision: bigint;
}

export interface AllKeysRequest extends CallOptions {
  /**
   * Whose keys: one store id (`DEFAULT_STORE_ID` when absent), or every store's when `allStores`
   * (repair, migration, replication), ordered by store id first.
   */
  readonly storeId?: string;
  readonly allStores?: boolean;
  /** The previous page's `nextPageToken`; undefined or "" for the first page. */
  readonly pageToken?: string;
  /** Largest number of keys to return; the store's default page size when absent. */
  readonly limit?: number;
}

export interface AllKeysPage {
  readonly keys: KeyVersion[];
  /** Opaque; empty when this was the last page. */
  readonly nextPageToken: string;
}

/** A condition of an atomic batch on one key's current state. */
export interface TxnCheck extends KeyRef {
  /** `absent`: the key must not exist; `present`: it must; a bigint: its revision must equal it. */
  readonly expect: "absent" | "present" | bigint;
}

/**
 * One write or remove of an atomic batch. `version` (mirroring only) overrides the batch's: a
 * backup receives each operation with the version the primary stored for it.
 */
export type TxnOperation =
  | (KeyRef & { readonly kind: "write"; readonly value: Uint8Array; readonly revision?: bigint; readonly version?: bigint })
  | (KeyRef & { readonly kind: "remove"; readonly version?: bigint });

export interface TxnRequest extends CallOptions {
  readonly checks: readonly TxnCheck[];
  readonly operations: readonly TxnOperation[];
  /**
   * Version of every operation of the batch; an operation whose key stores a version at or above
   * it is skipped (stale), as a single mutation would be. Undefined: apply unconditionally.
   */
  readonly version?: bigint;
  /** As `MutationOptions.plain`, for every operation: each is ordered after what its key holds. */
  readonly plain?: boolean;
  /** As `MutationOptions.owedToBackup`, for every key of the batch. */
  readonly owedToBackup?: boolean;
  /** As `MutationOptions.quota`, for the batch as a whole (refused whole). */
  readonly quota?: Quota;
  /**
   * As `MutationOptions.exact`, for every operation: each stores exactly its own `version` (and a
   * write its `revision`), 0n when absent, whatever is stored; never stale. A follower applies its
   * leader's changes so, with its position in the same commit. Backends only: the tiered store
   * refuses it (it could not mirror it to a backup).
   */
  readonly exact?: boolean;
}

/**
 * `succeeded`: every check held and the operations were applied together (their outcomes, the
 * revision each write stored, 0n for removes, and the version each operation was applied at (the
 * stored one for a stale operation), in request order). Otherwise nothing changed and
 * `failedCheck` is the index of the first check that did not hold.
 */
export type TxnResult =
  | {
      readonly succeeded: true;
      readonly outcomes: readonly MutationOutcome[];
      readonly revisions: readonly bigint[];
      readonly versions: readonly bigint[];
    }
  | { readonly succeeded: false; readonly failedCheck: number };

/**
 * LDK's KVStore (plus PaginatedKVStore and MigratableKVStore) as an async interface, with an
 * atomic conditional batch (`txn`).
 *
 * Errors are thrown as `StoreError`: `not-found` from `read`, `invalid-argument` for bad names or
 * page tokens, `unavailable` when a backing service cannot be reached.
 */
export interface KVStore {
  /** The current value; throws `not-found` when absent. */
  read(ref: KeyRef, options?: CallOptions): Promise<Uint8Array>;
  /** The current value, its version and revision; throws `not-found` when absent. */
  readVersioned(ref: KeyRef, options?: CallOptions): Promise<VersionedValue>;
  /** Replaces the value atomically and durably (for durable backends) before resolving. */
  write(ref: KeyRef, value: Uint8Array, options?: MutationOptions): Promise<MutationOutcome>;
  /** Deletes the key; removing an absent key succeeds (`applied`). */
  remove(ref: KeyRef, options?: RemoveOptions): Promise<MutationOutcome>;
  /** Applies every operation or none, if every check holds (contract §2, Txn). */
  txn(request: TxnRequest): Promise<TxnResult>;
  /** Every key of the namespace pair, without duplicates, in no particular order. */
  list(ns: NamespaceRef, options?: ListOptions): Promise<string[]>;
  /** One page of keys, newest-created first where the backend can (documented per backend). */
  listPage(ns: NamespaceRef, page?: PageRequest): Promise<Page>;
  /**
   * One page of keys with their versions, ordered by (store id, primary, secondary, key) (LDK's
   * `list_all_keys`, paged). A token from one store is refused in another.
   */
  listAllKeys(request?: AllKeysRequest): Promise<AllKeysPage>;
  /**
   * At least the highest version this store ever applied (it may stay above it after removes),
   * or 0n when it cannot tell. Seeds the tiered store's clock on open, cheaply (no scan).
   */
  highestVersion(): Promise<bigint>;
  /** Releases files, connections and timers. The store is unusable afterwards. */
  close(): Promise<void>;
}

/**
 * A store that keeps each tenant's usage (keys and value bytes) in a record it updates in the
 * transaction of every mutation, so quotas are decided where the data lives (contract §6.3).
 */
export interface StoreUsageReader {
  /** Keys and value bytes the store (tenant) holds, from the usage record (no scan). */
  storeUsage(storeId: string): Promise<StoreUsage>;
  /** The usage of the group `storeId` (or a group id) belongs to (usage-group.ts): the sum of its stores' records. */
  groupUsage(storeId: string): Promise<GroupUsage>;
  /** Counts the store's keys and bytes from the data, sets the record to them, and returns both. */
  recountUsage(storeId: string): Promise<{ readonly recorded: StoreUsage; readonly counted: StoreUsage }>;
}

export interface StoreUsage {
  readonly keys: number;
  readonly bytes: number;
}

/** A usage group's usage: the sum of its stores' records, and how many of its stores hold keys. */
export interface GroupUsage extends StoreUsage {
  readonly stores: number;
}

export function isStoreUsageReader(store: KVStore): store is KVStore & StoreUsageReader {
  return typeof (store as Partial<StoreUsageReader>).storeUsage === "function";
}

/** A key's ordering version and revision, without its value. */
export interface KeyState {
  readonly version: bigint;
  readonly revision: bigint;
}

/**
 * Optional capability: a key's state without its value, for lookups that only need the revision
 * (with a backup, every write looks one up first; a full read would copy the whole value).
 */
export interface StateReader {
  /** The key's version and revision, or undefined when it is absent. */
  readState(ref: KeyRef): Promise<KeyState | undefined>;
}

export function isStateReader(store: KVStore): store is KVStore & StateReader {
  return typeof (store as Partial<StateReader>).readState === "function";
}

/**
 * Optional capability: the backend reports each mutation's outcome state (`MutationOptions.onState`)
 * from the commit that applies it, so the tiered store needs no read of the key before writing the
 * backup with the primary's version and revision (contract §4.2).
 */
export interface StateReporter {
  readonly reportsState: true;
}

export function isStateReporter(store: KVStore): store is KVStore & StateReporter {
  return (store as Partial<StateReporter>).reportsState === true;
}

/** A key with everything a copy of it needs: address, value, version and revision. */
export interface StoredRecord extends KeyVersion {
  readonly value: Uint8Array;
}

/**
 * Optional capability: every key of every store as of one instant (contract §2.12, Snapshot),
 * read while writers go on. A backend implements it only when it can give that guarantee (one
 * read transaction or equivalent), never by walking pages that writers may change in between.
 */
export interface SnapshotSource {
  /** The records of one consistent view, in the backend's `listAllKeys` order. */
  snapshotRecords(signal?: AbortSignal): AsyncIterable<StoredRecord>;
}

export function isSnapshotSource(store: KVStore): store is KVStore & SnapshotSource {
  return typeof (store as Partial<SnapshotSource>).snapshotRecords === "function";
}

/**
 * A primary that can remember, in the same commit as a mutation (`owedToBackup`), that the backup
 * tier does not have it yet: a crash between the primary's commit and the backup's answer then
 * leaves a record to replay instead of a silent difference (contract §4).
 */
export interface BackupLedger {
  /** Forgets that the backup owes `ref`, unless a later mutation recorded it again (higher version). */
  settleOwed(ref: KeyRef, version: bigint): Promise<void>;
  /** Owed keys in (store id, primary, secondary, key) order after `after`, with the version recorded. */
  listOwed(limit: number, after?: KeyRef): Promise<KeyVersion[]>;
  /** How many keys are owed (read from the durable record). */
  countOwed(): Promise<number>;
}

export function isBackupLedger(store: KVStore): store is KVStore & BackupLedger {
  const candidate = store as Partial<BackupLedger>;
  return typeof candidate.settleOwed === "function" && typeof candidate.listOwed === "function";
}

/**
 * One applied mutation in a store's change log (contract §9): the store's next sequence number,
 * given in commit order, so a reader that has seen `seq` and asks for what follows misses nothing.
 */
export interface Change extends KeyRef {
  readonly storeId: string;
  readonly seq: bigint;
  readonly kind: "put" | "remove";
  /** The version the mutation was applied at (a remove's own version, not the value's). */
  readonly version: bigint;
  /** The revision a put stored; 0n for a remove. */
  readonly revision: bigint;
  /** The value's size in bytes (0 for a remove). */
  readonly size: number;
  /**
   * The value a put stored, when the reader asked for values and the key still holds it. The log
   * keeps no values (each is stored once, in the key's row): a put a later change of its key
   * replaced has no value and is `superseded`; that later change follows in the log.
   */
  readonly value?: Uint8Array;
  readonly superseded?: boolean;
  /** When it was committed, in ms since the epoch, by the clock of the process (or database) that committed it. */
  readonly time: number;
}

export interface ChangesRequest {
  readonly storeId: string;
  /** The first sequence to return (inclusive). */
  readonly from: bigint;
  /** At most this many changes. */
  readonly limit: number;
  /** Include each put's value. */
  readonly values: boolean;
  /**
   * With values: stop after the change whose value takes the page past this many bytes (a page
   * holds at least one change), so a page of large values stays bounded in memory.
   */
  readonly maxBytes?: number;
}

/** A store's sequence numbers: the last one given, and the oldest still kept. */
export interface ChangeBounds {
  /** The sequence of the store's latest change; 0n when it never changed. */
  readonly latest: bigint;
  /** The oldest sequence still kept; `latest + 1n` when none is (every older one was pruned). */
  readonly oldest: bigint;
}

export interface ChangesPage extends ChangeBounds {
  /** In sequence order, from `request.from`, with no gap. */
  readonly changes: Change[];
}

/** How long a change log keeps its changes (contract §7, `--watch-retention`). */
export interface ChangeRetention {
  /** Changes older than this are pruned. */
  readonly maxAgeMs?: number;
  /** At most this many changes are kept per store. */
  readonly maxCount?: number;
}

/**
 * Optional capability: a change log per store, written in the transaction of every mutation that
 * changes data (a remove of an absent key is no change), with sequences given in commit order.
 */
export interface ChangeLog {
  /** The changes of one store from `request.from` on, with the store's bounds as of the same read. */
  readChanges(request: ChangesRequest): Promise<ChangesPage>;
  /** Each store's latest sequence (stores that never changed are absent). */
  changeHeads(): Promise<Map<string, bigint>>;
  /** Drops changes past `retention`, at most `limit` of them; how many were dropped. */
  pruneChanges(retention: ChangeRetention, limit: number, now?: number): Promise<number>;
  /**
   * Calls `listener` with what a commit of this process changed, after it is durable; the
   * returned function stops it. Other processes' commits (a shared database) are found by reading.
   */
  onChanges(listener: (committed: CommittedChanges) => void): () => void;
}

/**
 * What one commit changed, per store: its changes in sequence order without values, or undefined
 * when the backend does not have them at hand (a reader reads them from the log). Valid during
 * the listener's call only: the backend reuses the map.
 */
export type CommittedChanges = ReadonlyMap<string, readonly Change[] | undefined>;

export function isChangeLog(store: KVStore): store is KVStore & ChangeLog {
  return typeof (store as Partial<ChangeLog>).readChanges === "function";
}

/** The store id a reference means. */
export function storeIdOf(ref: { readonly storeId?: string }): string {
  return ref.storeId ?? DEFAULT_STORE_ID;
}

/** Orders keys by (store id, primary namespace, secondary namespace, key), as `listAllKeys` returns them. */
export function compareKeys(a: KeyRef, b: KeyRef): number {
  const order = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
  return (
    order(storeIdOf(a), storeIdOf(b)) ||
    order(a.primaryNamespace, b.primaryNamespace) ||
    order(a.secondaryNamespace, b.secondaryNamespace) ||
    order(a.key, b.key)
  );
}

/**
 * Derives `read` from `readVersioned`, so each backend implements reading once.
 */
export abstract class VersionedReads {
  abstract readVersioned(ref: KeyRef, options?: CallOptions): Promise<VersionedValue>;

  async read(ref: KeyRef, options?: CallOptions): Promise<Uint8Array> {
    return (await this.readVersioned(ref, options)).value;
  }
}
