//! What runs inside one PostgreSQL transaction: the `Tx` (ledger rows, clock row, change log and
//! quota check at its end), single mutations, and the Txn lock protocol (`runLocked`).

import { createHash } from "node:crypto";
import type pg from "pg";
import { CHANGE_KIND_PUT, CHANGE_KIND_REMOVE } from "./db-rows.js";
import { StoreError } from "./errors.js";
import { appliedVersion, checkQuota, firstFailedCheck, isStale, stateAfterWrite, usageChange, type StoredState } from "./mutation-rules.js";
import { byId, groupUsageOf, keyId, keyParams, statement, type DbGroupUsage, type SQL } from "./postgres-sql.js";
import { storeIdOf, type KeyRef, type MutationOptions, type MutationOutcome, type Quota, type RemoveOptions, type TxnCheck, type TxnResult } from "./types.js";
import { groupChange, UsageChanges, type UsageGroup } from "./usage-group.js";

/** Fires the usage triggers' pending events now (a quota check reads the usage they make). */
const USAGE_TRIGGERS_NOW = "SET CONSTRAINTS tierkv_usage_keys, tierkv_usage_bytes IMMEDIATE";

/** The class of tierkv's usage group locks among the database's two-key advisory locks (any constant). */
const GROUP_LOCK_CLASS = 0x746b7667;

/** A usage group's advisory lock key: groups that share one only queue behind each other. */
function groupLockKey(group: UsageGroup): number {
  return createHash("sha256").update(group.id).digest().readInt32BE(0);
}

/** A change of a transaction's, logged at its end. */
interface LoggedChange {
  readonly ref: KeyRef;
  readonly kind: typeof CHANGE_KIND_PUT | typeof CHANGE_KIND_REMOVE;
  readonly version: bigint;
  readonly revision: bigint;
  /** A put's value size (0 for a remove). */
  readonly size: number;
}

/** The work of one transaction besides its `tierkv_kv` statements, done after all of them. */
export class Tx {
  readonly owed: Array<{ id: string; text: "recordOwed" | "settleOwed"; values: unknown[] }> = [];
  highest = 0n;
  rollback = false;
  /** The quota this transaction's mutations must fit, with their changes per store (a lone mutation or Txn). */
  quota: { readonly quota: Quota; readonly changes: UsageChanges } | undefined;
  /** The stores this transaction changed: the change log's listeners hear of them once it committed. */
  readonly changedStores = new Set<string>();
  /** Its changes, in the order they are numbered (`finish` logs them). */
  private readonly changes: LoggedChange[] = [];
  /** Stores whose usage rows the usage triggers change though no change of theirs is logged (a Txn's placeholders). */
  private readonly touched = new Set<string>();

  /**
   * `autocommit`: no BEGIN, each statement commits as it runs, so a statement that changes
   * `tierkv_kv` logs its own changes (the `…Logged` statements) and `put` only notes the store.
   */
  constructor(
    readonly client: pg.PoolClient,
    readonly autocommit: boolean,
  ) {}

  async query<R extends pg.QueryResultRow>(name: keyof typeof SQL, values: readonly unknown[]): Promise<pg.QueryResult<R>> {
    return this.client.query<R>(statement(name, values));
  }

  owe(ref: KeyRef, version: bigint): void {
    this.owed.push({ id: keyId(ref), text: "recordOwed", values: [...keyParams(ref), version] });
  }

  settle(ref: KeyRef, version: bigint): void {
    this.owed.push({ id: keyId(ref), text: "settleOwed", values: [...keyParams(ref), version] });
  }

  raise(version: bigint | undefined): void {
    if (version !== undefined && version > this.highest) this.highest = version;
  }

  /** A write this transaction applied, at the version and revision it stored (autocommit: its statement logged it). */
  put(ref: KeyRef, version: bigint, revision: bigint, value: Uint8Array): void {
    this.changedStores.add(storeIdOf(ref));
    if (!this.autocommit) this.changes.push({ ref, kind: CHANGE_KIND_PUT, version, revision, size: value.byteLength });
  }

  /** A remove that took a stored key away, at the version it was applied at (0 without one). */
  removed(ref: KeyRef, version: bigint): void {
    this.changedStores.add(storeIdOf(ref));
    this.changes.push({ ref, kind: CHANGE_KIND_REMOVE, version, revision: 0n, size: 0 });
  }

  /** A row of `storeId` inserted or deleted without a change to log (a placeholder). */
  touch(storeId: string): void {
    this.touched.add(storeId);
  }

  /**
   * The ledger rows in key order, then the clock row; then, for a quota check, the advisory lock of
   * each usage group it changes, in key order (quota'd transactions of one group, on any instance,
   * pass the check one at a time); then the change log, which locks the usage rows in store order:
   * the tail of the global lock order. Then the quota check, if any: the usage triggers fire now
   * instead of at COMMIT (on usage rows already held), and each group's usage is read: the other
   * stores' rows as committed by the transaction that last held the group's lock (or by writers
   * without a quota), this transaction's own rows with its changes.
   */
  async finish(): Promise<void> {
    if (this.rollback) return;
    for (const op of [...this.owed].sort(byId)) await this.client.query(statement(op.text, op.values));
    if (this.highest > 0n) await this.client.query(statement("raiseClock", [this.highest]));
    // A change that grows nothing is never refused: no need to look.
    // A group may grow when its bytes do, or a store of it gains keys (its keys, or its store ids).
    const growing =
      this.quota === undefined
        ? []
        : [...this.quota.changes.byGroup()].filter(
            ({ stores }) => [...stores.values()].some((change) => change.keys > 0) || groupChange(stores, () => 0).bytes > 0,
          );
    const keys = [...new Set(growing.map(({ group }) => groupLockKey(group)))].sort((a, b) => a - b);
    for (const key of keys) await this.query("lockGroup", [GROUP_LOCK_CLASS, key]);
    await this.logChanges();
    if (this.quota === undefined || growing.length === 0) return;
    await this.client.query(USAGE_TRIGGERS_NOW);
    for (const { group, stores } of growing) {
      const [total] = (await this.query<DbGroupUsage>("groupUsage", [group.from, group.to])).rows;
      const rows = (await this.query<{ store_id: string; keys: bigint }>("usageOf", [[...stores.keys()]])).rows;
      const keysAfter = (storeId: string): number => Number(rows.find((row) => row.store_id === storeId)?.keys ?? 0n);
      const change = groupChange(stores, (storeId) => keysAfter(storeId) - stores.get(storeId)!.keys);
      const after = groupUsageOf(total);
      checkQuota(group, { keys: after.keys - change.keys, bytes: after.bytes - change.bytes, stores: after.stores - change.stores }, change, this.quota.quota);
    }
  }

  /**
   * One statement: each store's sequence raised by its number of changes (and the usage rows the
   * triggers will touch locked, all in store order), then a row per change (no values: see
   * postgres.ts, "Change log").
   */
  private async logChanges(): Promise<void> {
    if (this.changes.length === 0 && this.touched.size === 0) return;
    // Each store's count of changes, counted from the last change back: at each one, how many of
    // its store's follow it (its sequence is the store's new last minus that).
    const counts = new Map([...this.touched].map((storeId) => [storeId, 0]));
    const columns: unknown[][] = Array.from({ length: 9 }, () => []);
    for (const change of [...this.changes].reverse()) {
      const storeId = storeIdOf(change.ref);
      const follows = counts.get(storeId) ?? 0;
      counts.set(storeId, follows + 1);
      const row = [...keyParams(change.ref), change.kind, change.version, change.revision, change.size, follows];
      row.forEach((part, i) => columns[i]!.push(part));
    }
    await this.query("logChanges", [[...counts.keys()], [...counts.values()], ...columns]);
  }
}

/** A mutation's outcome and the version it was applied at (none when stale, or for an unversioned remove). */
export interface Mutated {
  readonly outcome: MutationOutcome;
  readonly version?: bigint;
}

export async function applyWrite(
  tx: Tx,
  ref: KeyRef,
  value: Uint8Array,
  options: Pick<MutationOptions, "version" | "plain" | "revision" | "exact">,
): Promise<Mutated> {
  if (options.exact) {
    // The version it replaces leaves the version index: the clock row keeps it.
    const [old] = (await tx.query<StoredState>("lock", keyParams(ref))).rows;
    tx.raise(old?.version);
    await tx.query("writeExact", [...keyParams(ref), value, options.version ?? 0n, options.revision ?? 0n]);
    tx.put(ref, options.version ?? 0n, options.revision ?? 0n, value);
    return { outcome: "applied", version: options.version ?? 0n };
  }
  const params = [...keyParams(ref), value, options.version ?? null, options.revision ?? null, options.plain === true];
  const [row] = (await tx.query<{ version: bigint; revision: bigint }>(tx.autocommit ? "writeLogged" : "write", params)).rows;
  if (row === undefined) return { outcome: "stale" };
  tx.put(ref, row.version, row.revision, value);
  return { outcome: "applied", version: row.version };
}

/** An exact remove is unversioned here (it always applies); its change carries the version it was given. */
export async function applyRemove(tx: Tx, ref: KeyRef, options: Pick<RemoveOptions, "version" | "plain" | "exact">): Promise<Mutated> {
  const version = options.exact ? undefined : options.version;
  const plain = options.plain === true && version !== undefined;
  const [removed] = (await tx.query<{ version: bigint; applied: bigint }>("remove", [...keyParams(ref), version ?? null, plain])).rows;
  if (removed !== undefined) {
    // The removed key takes its version out of the version index: the clock row keeps it.
    tx.raise(removed.version);
    if (version === undefined) {
      tx.removed(ref, options.version ?? 0n);
      return { outcome: "applied" };
    }
    tx.raise(removed.applied);
    tx.removed(ref, removed.applied);
    return { outcome: "applied", version: removed.applied };
  }
  if (version === undefined) return { outcome: "applied" };
  // Nothing was removed. A plain remove found the key absent: applied at its proposal. Otherwise
  // the key is absent (applied) or holds this version or a later one (stale); either answer is
  // what a remove at this point of the history would have got.
  if (plain) return { outcome: "applied", version };
  const [row] = (await tx.query<{ version: bigint }>("version", keyParams(ref))).rows;
  return row !== undefined && row.version >= version ? { outcome: "stale" } : { outcome: "applied", version };
}

/** One operation of `runLocked`: a Txn's, or a lone mutation checked against a quota. */
export interface LockedOperation {
  readonly ref: KeyRef;
  readonly kind: "write" | "remove";
  /** Set for writes. */
  readonly value?: Uint8Array | undefined;
  readonly version?: bigint | undefined;
  readonly plain: boolean;
  readonly revision?: bigint | undefined;
  readonly exact?: boolean | undefined;
}

/** A key's locked state, with the size of its value (usage). */
type LockedState = StoredState & { readonly size: number };

/** A lone write's result from `runLocked`'s. */
export function mutatedOf(result: TxnResult): Mutated {
  if (!result.succeeded) throw new StoreError("internal", "a mutation without checks failed one");
  return result.outcomes[0] === "applied" ? { outcome: "applied", version: result.versions[0]! } : { outcome: "stale" };
}

/**
 * A Txn (or a lone mutation with a quota) alone in its transaction: lock every key in key order
 * (a present key's row FOR UPDATE; an absent key through a placeholder row, deleted again below),
 * decide on the locked state, apply. A failed check rolls back, placeholders included. The quota
 * is checked by `Tx.finish` against the usage the triggers make, with the change decided here
 * from the locked sizes (exact: no other transaction can change these keys until we commit).
 */
export async function runLocked(
  tx: Tx,
  checks: readonly TxnCheck[],
  operations: readonly LockedOperation[],
  refs: ReadonlyMap<string, KeyRef>,
  options: { readonly owedToBackup?: boolean | undefined; readonly quota?: Quota | undefined; readonly single?: boolean },
): Promise<TxnResult> {
  const states = new Map<string, LockedState | undefined>();
  const placeholders = new Set<string>();
  for (const id of [...refs.keys()].sort()) {
    const params = keyParams(refs.get(id)!);
    for (let tries = 0; ; tries++) {
      const [row] = (await tx.query<LockedState>("lock", params)).rows;
      if (row !== undefined) {
        states.set(id, { version: row.version, revision: row.revision, size: row.size });
        break;
      }
      if ((await tx.query("placeholder", params)).rowCount !== 0) {
        states.set(id, undefined);
        placeholders.add(id);
        tx.touch(params[0]);
        break;
      }
      // Created (or re-created) by another transaction in between: lock that row instead.
      if (tries >= 100) throw new StoreError("unavailable", "the database is busy (a key kept changing); retry");
    }
  }
  const failedCheck = firstFailedCheck(checks, (check) => states.get(keyId(check)));
  if (failedCheck >= 0) {
    tx.rollback = true;
    return { succeeded: false, failedCheck };
  }
  if (options.quota !== undefined) {
    // The operations' keys are distinct: each store's change is the sum of its operations'.
    const changes = new UsageChanges();
    for (const operation of operations) {
      const stored = states.get(keyId(operation.ref));
      if (isStale(stored, operation)) continue;
      changes.add(storeIdOf(operation.ref), usageChange(stored?.size, operation.kind === "write" ? operation.value!.byteLength : undefined));
    }
    tx.quota = { quota: options.quota, changes };
  }
  const outcomes: MutationOutcome[] = new Array(operations.length);
  const revisions: bigint[] = new Array(operations.length);
  const versions: bigint[] = new Array(operations.length);
  /** Operations that changed a row (not stale, not a remove of an absent key): logged below. */
  const changed = new Set<number>();
  // In key order (the keys are distinct, so the order changes no result): the usage triggers'
  // events then lock the usage rows in store order.
  const order = operations.map((operation, index) => ({ operation, index, id: keyId(operation.ref) })).sort(byId);
  for (const { operation, index, id } of order) {
    const stored = states.get(id);
    const params = keyParams(operation.ref);
    if (isStale(stored, operation)) {
      outcomes[index] = "stale";
      revisions[index] = operation.kind === "write" ? stored!.revision : 0n;
      versions[index] = stored!.version;
    } else if (operation.kind === "write") {
      // An exact write takes the version it replaces out of the version index: the clock row keeps it.
      if (operation.exact) tx.raise(stored?.version);
      const next = stateAfterWrite(stored, operation);
      await tx.query("update", [...params, operation.value!, next.version, next.revision]);
      placeholders.delete(id);
      states.set(id, { ...next, size: operation.value!.byteLength });
      changed.add(index);
      outcomes[index] = "applied";
      revisions[index] = next.revision;
      versions[index] = next.version;
    } else {
      const version = appliedVersion(stored, operation);
      if (stored !== undefined) {
        await tx.query("delete", params);
        tx.raise(stored.version);
        tx.raise(version);
        states.set(id, undefined);
        changed.add(index);
      }
      outcomes[index] = "applied";
      revisions[index] = 0n;
      versions[index] = version ?? 0n;
    }
    if (options.owedToBackup) {
      // A lone stale mutation records its own version, as without a quota.
      tx.owe(operation.ref, options.single && outcomes[index] === "stale" ? (operation.version ?? 0n) : versions[index]!);
    }
  }
  // Keys only checked (or removed while absent) leave no row behind.
  for (const id of placeholders) await tx.query("delete", keyParams(refs.get(id)!));
  // Numbered in request order, as the operations were given (they were applied in key order).
  for (const [index, operation] of operations.entries()) {
    if (!changed.has(index)) continue;
    if (operation.kind === "write") tx.put(operation.ref, versions[index]!, revisions[index]!, operation.value!);
    else tx.removed(operation.ref, versions[index]!);
  }
  return { succeeded: true, outcomes, revisions, versions };
}
