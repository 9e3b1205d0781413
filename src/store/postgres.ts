//! The PostgreSQL backend (node-postgres): one database shared by several tierkv instances.
//!
//! URI: `postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=…&sslrootcert=FILE&pool_max=N`
//! (`postgresql://` too); see `parsePostgresUri` for every parameter.
//!
//! Schema (versioned in `tierkv_migrations`, migrated on open inside one transaction under an
//! advisory lock, so instances opening at once never race; a newer schema is refused):
//! - `tierkv_kv`, keyed by (store_id, primary_namespace, secondary_namespace, key), all `COLLATE
//!   "C"` so the primary key's order is `compareKeys`'s (`listAllKeys` walks that index); `seq`
//!   (a sequence, set on creation and kept by overwrites) with an index on (store_id, primary,
//!   secondary, seq) gives the newest-created-first `listPage`.
//! - `tierkv_owed`: the backup ledger (`BackupLedger`), written in the mutation's own transaction.
//! - `tierkv_usage`: each store's keys and value bytes (`StoreUsageReader`, quotas), kept by
//!   triggers on `tierkv_kv` (below); read in O(1), never counted from the data except by
//!   `recountUsage`. Also (schema 3) `seq`, the store's last change sequence. Rows are never
//!   deleted.
//! - `tierkv_changes`: the change log (`ChangeLog`, below), keyed by (store_id, seq).
//! - The clock's high-water mark (`highestVersion`) is `max(version)` over an index on
//!   `tierkv_kv.version` (one index probe, no scan), or `tierkv_clock`, a one-row table that
//!   only removes and exact writes raise: they take a version out of the index (the removed or
//!   overwritten one, and a remove's own).
//!   Why not a one-row table raised by every commit, as SQLite does: with several instances every
//!   writing transaction would queue on that one row lock until the previous one committed (its
//!   fsync included), serialising all writers of the database. The version index costs one
//!   index entry per write instead, and removes, which are rarer, take the row lock last.
//!
//! Several instances, one database: every single mutation is decided by the database in one
//! statement (`INSERT … ON CONFLICT DO UPDATE … WHERE stored.version < excluded.version`,
//! `DELETE … WHERE version < $v`), so there is no read-then-write race. A plain mutation (no
//! caller version: its version is only a proposal) is decided the same way: the upsert stores
//! `CASE WHEN stored >= $v THEN stored + 1 ELSE $v END` with no WHERE, the remove deletes
//! unconditionally and returns `greatest($v, removed + 1)`, and `RETURNING version` gives the
//! version `onVersion` reports once the commit succeeded. So another instance's clock being far
//! behind never makes a plain mutation stale. A Txn runs alone in a
//! READ COMMITTED transaction that first locks every key it checks or writes in one global order
//! (`SELECT … FOR UPDATE` for a present key; for an absent key, a placeholder row inserted and
//! deleted again before commit, whose uncommitted index entry makes every other writer of that
//! key wait), then decides with the rules of `mutation-rules.ts` on the locked state: two
//! instances' conflicting transactions are serialised and a failed check rolls everything back.
//!
//! Usage: the database decides it, for every statement of every instance (an older tierkv still
//! running on schema 1 included): row triggers on `tierkv_kv` add the exact OLD/NEW difference
//! (+1/−1 key on INSERT/DELETE, the size difference on an UPDATE that changes it; a same-size
//! overwrite does not even queue an event) to the store's `tierkv_usage` row in the transaction
//! that makes the change, so the multi-row batch, exact copies and the Txn's placeholders (an
//! empty row inserted and deleted again: +1 then −1, never below the committed count) need no
//! old sizes read by the app. The triggers are DEFERRABLE INITIALLY DEFERRED: they run at COMMIT,
//! after every other lock of the transaction, instead of from the first row on (which would
//! serialise all of a store's writers for the whole transaction and break the lock order below);
//! by then the change log (below) holds the row already. Rows with keys = 0 stay; harmless.
//! Measured (1,000 writes of 100 bytes, same run, with and without the triggers, busy 2-core VM,
//! data dir in memory): one at a time about even (~1,100–2,300/s either way); 1,000 concurrent
//! (multi-row group commit) ~12–23k/s against ~22–34k/s; two instances writing one store at once
//! ~10–12k/s against ~12–19k/s: each commit of a store now queues on its usage row.
//!
//! Quotas: a mutation carrying one runs alone in its transaction through the Txn protocol below
//! (its key locked, so its stored size is known exactly and nobody changes it until COMMIT), which
//! gives its change per store (`usageChange`, stale operations excluded). The quota holds the
//! store's usage group (usage-group.ts: a VSS user's stores together). If it grows a dimension of
//! its group, after the other locks (`Tx.finish`) it takes the group's advisory lock
//! (`pg_advisory_xact_lock`, released at COMMIT or ROLLBACK), then the usage triggers are made to
//! fire at once (`SET CONSTRAINTS … IMMEDIATE`): the transaction then holds its stores' usage rows
//! and reads its group's range of rows (its own updates of the latest committed counts, and the
//! other stores' rows as the group lock's previous holder committed them), and `checkQuota`
//! refuses with the usage before it; ROLLBACK undoes everything. Quota'd writers of one group, on
//! any instance and any of its stores, thus queue on that lock and each sees the others' committed
//! growth (row locks alone would not do: writers of two stores of one group hold different rows).
//! A Txn is checked as a whole. A remove never grows usage, so it is never checked. Mutations
//! without a quota keep the fast paths.
//! `recountUsage` locks the usage row first (creating it when absent), counts, and sets it: a
//! mutation committing meanwhile waits at its COMMIT, so it is in both the count and the record
//! or in neither (it adds its change afterwards).
//!
//! Change log: every change to `tierkv_kv` (a write, a remove that took a key away, an exact copy,
//! a Txn's operations; not a stale mutation, a remove of an absent key or a Txn's placeholder) is
//! a row of `tierkv_changes` (store, seq, names, kind 0 put / 1 remove, version, revision, size,
//! commit time by the database's clock), written in its own transaction. No value: a put's is read
//! from its key while the key still holds that put (same version and revision), else the put is
//! superseded (contract §9.1); each value is stored once.
//! Sequences follow commit order per store, across instances: each store's last sequence is its
//! usage row's `seq`, raised in the transaction's last statement before COMMIT (`Tx.finish`: one
//! statement raises every changed store's `seq` by its count of changes, in store order, and
//! inserts the rows numbered from there). The raise locks the usage row until COMMIT, so the
//! store's next transaction (any instance's) reads the raised `seq` only after this one committed
//! (or rolled back: then the numbers are given again, no gap): a reader that has read up to N
//! never later finds a change at or below N committed. The usage triggers then update rows the
//! transaction already holds; a Txn's placeholder stores are locked (raised by 0) in the same
//! statement, so no usage row is ever locked out of store order. A statement committed alone (a
//! lone write, a multi-row batch without the ledger; no BEGIN) logs its own rows in the same
//! statement (`…Logged`: the upsert, the raise and the insert as one WITH), keeping one round trip.
//! Cost: one store's commits are serialised across their WAL flush (before, only those whose
//! triggers fired: not same-size overwrites), a transaction with BEGIN holds the row one round
//! trip longer (the log statement, then COMMIT). Measured, with values still in the log then
//! (store level, 1 KiB versioned writes to one store, fsync on, same server, runs interleaved, on
//! a 2-core VM with a load average of 14–23 from other work): one writer about even (~200–230/s
//! either way); 16–64 concurrent writers 0.64–0.75× (c=64: ~2,500/s → ~1,800/s); two instances
//! 0.71×; 2-write Txns 0.55–0.62×; overwrites of 500 keys at c=64 0.55× (they took no usage row
//! lock before; the raise alone, without the log rows, costs 0.74× there). `readChanges` reads a
//! page and the store's bounds (usage `seq`,
//! min kept `seq`) in one statement, so one snapshot; `pruneChanges` deletes only a prefix of each
//! store's log (the age bound stops at its first young change), oldest first across stores.
//! `onChanges` listeners hear of a commit of this process before its mutations resolve.
//! Migration 2 → 3 starts every store at 0 with an empty log. An older tierkv still writing to a
//! migrated database does not log its changes: stop them before upgrading.
//!
//! Deadlock freedom: every transaction takes its row locks in one global order — `tierkv_kv`
//! rows by (store, primary, secondary, key), then `tierkv_owed` rows in the same order, then the
//! clock row, then usage group advisory locks by key (quota'd transactions only), then
//! `tierkv_usage` rows by store (`COLLATE "C"` order: the change log's raise takes them all, before
//! the deferred triggers or a quota check touch them). A batch sorts its mutations by key
//! (stably: one key's mutations keep their order); a Txn applies its (distinct) keys in key order.
//! Serialization failures and deadlocks that happen anyway are retried a few times, then reported
//! as `unavailable`.
//!
//! Group commit: mutations that arrive in the same turn of the event loop share one transaction
//! (bounded by count and bytes, spread over the free connections), and up to `pool_max` such
//! transactions run at once. A key's mutations never run in two transactions at once, so they
//! apply in the order they were made. A lone mutation of one statement skips BEGIN/COMMIT, and a
//! batch of versioned writes to distinct keys is one multi-row statement (one round trip); plain
//! writes have their own multi-row statement (a batch mixing plain and versioned writes runs one
//! statement per write: `ON CONFLICT DO UPDATE` cannot see a per-row flag, and a server sends one
//! kind or the other).
//! Measured (fsync on, pool 10, 100-byte versioned writes, 2.5 s per point, noisy VM disk):
//! about even with one transaction per mutation up to 16 concurrent writers, 1.2–3× the
//! throughput from 64 up (e.g. 256 writers: ~2,200–4,000/s against ~800–1,700/s; same ranking
//! through a proxy adding 1 ms each way). `groupCommit: false` turns it off.
//!
//! ListPage order: newest-created first by `tierkv_kv.seq`. With several instances, that `seq`
//! follows the order rows were inserted, not committed: a page walk running beside another
//! instance's creations may miss a key created meanwhile (as any walk may); the change log's
//! sequences are the ones in commit order.

//!
//! Files: postgres-uri.ts (URIs), postgres-errors.ts (error mapping), postgres-sql.ts (statements),
//! postgres-schema.ts (migrations), postgres-txn.ts (a transaction's work, the Txn lock protocol),
//! postgres-group-commit.ts (the scheduler), postgres-snapshot.ts; this file is the store.

import pg from "pg";
import { effectivePageSize, GROUP_COMMIT_MAX_MUTATIONS, POSTGRES_DEFAULT_POOL_MAX } from "../limits.js";
import { notFound, StoreError } from "./errors.js";
import type { StoredState } from "./mutation-rules.js";
import { allKeysPage, allKeysStart, decodeSequenceToken, sequencePage } from "./page-token.js";
import { postgresStoreError } from "./postgres-errors.js";
import { GroupCommit } from "./postgres-group-commit.js";
import { analyzeIfNeverAnalyzed, migrate } from "./postgres-schema.js";
import { postgresSnapshotRecords } from "./postgres-snapshot.js";
import { ChangeListeners } from "./change-listeners.js";
import { toChange, toKeyVersion, type DbChange, type DbKeyVersion } from "./db-rows.js";
import { groupUsageOf, keyId, keyParams, namespaceParams, statement, TYPES, usageOf, type DbGroupUsage, type DbUsage, type SQL } from "./postgres-sql.js";
import { applyRemove, applyWrite, mutatedOf, runLocked, type LockedOperation, type Mutated } from "./postgres-txn.js";
import { parsePostgresUri } from "./postgres-uri.js";
import { usageGroupOf } from "./usage-group.js";
import {
  storeIdOf,
  VersionedReads,
  type AllKeysPage,
  type AllKeysRequest,
  type BackupLedger,
  type GroupUsage,
  type ChangeLog,
  type CommittedChanges,
  type ChangeRetention,
  type ChangesPage,
  type ChangesRequest,
  type KVStore,
  type StoreUsage,
  type StoreUsageReader,
  type KeyRef,
  type KeyState,
  type KeyVersion,
  type ListOptions,
  type MutationOptions,
  type MutationOutcome,
  type NamespaceRef,
  type Page,
  type PageRequest,
  type RemoveOptions,
  type SnapshotSource,
  type StoredRecord,
  type TxnRequest,
  type TxnResult,
  type VersionedValue,
} from "./types.js";
import { formatPath, validateKey, validateNamespace, validateTxn } from "./validate.js";

export { POSTGRES_SCHEMA_VERSION } from "./postgres-schema.js";
export { DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_POOL_MAX, parsePostgresUri } from "./postgres-uri.js";
export { postgresStoreError } from "./postgres-errors.js";

/** A row of the `changes` statement: the store's bounds, and a change or (no change at all) NULLs. */
type ChangeRow = { latest: bigint; oldest: bigint } & ({ [column in keyof DbChange]: DbChange[column] | null });

export interface PostgresStoreOptions {
  /**
   * Group commit (default true): the mutations of one event-loop turn share a transaction.
   * false gives every mutation a transaction of its own (for measurements).
   */
  readonly groupCommit?: boolean;
}

export class PostgresStore extends VersionedReads implements KVStore, BackupLedger, StoreUsageReader, SnapshotSource, ChangeLog {
  private closed = false;
  private readonly commits: GroupCommit;
  private readonly changeListeners = new ChangeListeners();

  private constructor(
    private readonly pool: pg.Pool,
    poolMax: number,
    options: PostgresStoreOptions,
  ) {
    super();
    this.commits = new GroupCommit(pool, poolMax, options.groupCommit === false ? 1 : GROUP_COMMIT_MAX_MUTATIONS, (storeIds) =>
      this.changeListeners.notifyStores(storeIds),
    );
  }

  /** Transactions run again after a serialization failure or deadlock (for metrics and tests). */
  get retriedTransactions(): number {
    return this.commits.retriedTransactions;
  }

  /** Connects, creates or upgrades the schema, and returns the store. */
  static async open(uri: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const config = parsePostgresUri(uri);
    const pool = new pg.Pool({ ...config, types: TYPES });
    // A connection the server drops emits "error": while pooled on the pool, while checked out
    // on the client (the statement in flight rejects as well). Either way the next query
    // reconnects; without these listeners the event would crash the process.
    pool.on("error", () => undefined);
    pool.on("connect", (client) => client.on("error", () => undefined));
    try {
      await migrate(pool);
      await analyzeIfNeverAnalyzed(pool);
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw postgresStoreError(error);
    }
    return new PostgresStore(pool, config.max ?? POSTGRES_DEFAULT_POOL_MAX, options);
  }

  private async query<R extends pg.QueryResultRow>(name: keyof typeof SQL, values: readonly unknown[]): Promise<R[]> {
    if (this.closed) throw new StoreError("unavailable", "the store is closed");
    try {
      return (await this.pool.query<R>(statement(name, values))).rows;
    } catch (error) {
      throw postgresStoreError(error);
    }
  }

  async readVersioned(ref: KeyRef): Promise<VersionedValue> {
    validateKey(ref, "read");
    const [row] = await this.query<{ value: Buffer; version: bigint; revision: bigint }>("read", keyParams(ref));
    if (row === undefined) throw notFound("read", formatPath(ref));
    return row;
  }

  async readState(ref: KeyRef): Promise<KeyState | undefined> {
    validateKey(ref, "read");
    const [row] = await this.query<StoredState>("state", keyParams(ref));
    return row;
  }

  async write(ref: KeyRef, value: Uint8Array, options: MutationOptions = {}): Promise<MutationOutcome> {
    validateKey(ref, "write");
    const plain = options.plain === true && options.version !== undefined && !options.exact;
    let mutated: Mutated;
    if (options.quota !== undefined) {
      // Checked against its store's usage in a transaction of its own, on the locked key (as a Txn).
      const operation: LockedOperation = { ref, kind: "write", value, version: options.version, plain, revision: options.revision, exact: options.exact };
      mutated = await this.commits.schedule({ id: "", keys: [keyId(ref)], bytes: value.byteLength, alone: true, oneStatement: false }, async (tx) =>
        mutatedOf(await runLocked(tx, [], [operation], new Map([[keyId(ref), ref]]), { ...options, single: true })),
      );
    } else {
      // An exact write may lower the stored version: it reads the old one for the clock row first.
      const batchable =
        options.version !== undefined && !options.exact && !(plain && options.revision !== undefined)
          ? { ref, value, version: options.version, revision: options.revision, plain, owedToBackup: options.owedToBackup === true }
          : undefined;
      mutated = await this.commits.enqueue(
        ref,
        value.byteLength,
        !options.owedToBackup && !options.exact,
        async (tx) => {
          const result = await applyWrite(tx, ref, value, { ...options, plain });
          if (options.owedToBackup) tx.owe(ref, result.version ?? options.version ?? 0n);
          return result;
        },
        batchable,
      );
    }
    // Resolved: committed.
    if (mutated.version !== undefined) options.onVersion?.(mutated.version);
    return mutated.outcome;
  }

  /** A remove never grows usage, so its quota (if any) can never refuse it: it is not checked. */
  async remove(ref: KeyRef, options: RemoveOptions = {}): Promise<MutationOutcome> {
    validateKey(ref, "remove");
    // A lazy remove rides the same group commit: nothing to gain from deferring it further.
    // A remove raises the clock row to the version it removed.
    const mutated = await this.commits.enqueue(ref, 0, false, async (tx) => {
      const result = await applyRemove(tx, ref, options);
      if (options.owedToBackup) tx.owe(ref, result.version ?? options.version ?? 0n);
      return result;
    });
    if (mutated.version !== undefined) options.onVersion?.(mutated.version);
    return mutated.outcome;
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    validateTxn(request);
    const refs = new Map<string, KeyRef>();
    for (const ref of [...request.checks, ...request.operations]) refs.set(keyId(ref), ref);
    const bytes = request.operations.reduce((sum, op) => sum + (op.kind === "write" ? op.value.byteLength : 0), 0);
    const operations = request.operations.map(
      (op): LockedOperation => ({
        ref: op,
        kind: op.kind,
        value: op.kind === "write" ? op.value : undefined,
        version: op.version ?? request.version,
        plain: request.plain === true,
        revision: op.kind === "write" ? op.revision : undefined,
        exact: request.exact,
      }),
    );
    return this.commits.schedule<TxnResult>({ id: "", keys: [...refs.keys()], bytes, alone: true, oneStatement: false }, (tx) =>
      runLocked(tx, request.checks, operations, refs, request),
    );
  }

  async settleOwed(ref: KeyRef, version: bigint): Promise<void> {
    await this.commits.enqueue(ref, 0, true, async (tx) => tx.settle(ref, version));
  }

  async list(ns: NamespaceRef, options: ListOptions = {}): Promise<string[]> {
    validateNamespace(ns, "list");
    const rows = await this.query<{ key: string }>("list", [...namespaceParams(ns), options.limit ?? null]);
    return rows.map((row) => row.key);
  }

  async listPage(ns: NamespaceRef, page: PageRequest = {}): Promise<Page> {
    validateNamespace(ns, "list");
    const before = page.pageToken ? decodeSequenceToken(ns, page.pageToken) : Number.MAX_SAFE_INTEGER;
    const size = effectivePageSize(page.pageSize);
    return sequencePage(ns, await this.query<{ key: string; seq: bigint }>("page", [...namespaceParams(ns), before, size + 1]), size);
  }

  async listAllKeys(request: AllKeysRequest = {}): Promise<AllKeysPage> {
    if (!request.allStores) validateNamespace({ storeId: storeIdOf(request), primaryNamespace: "", secondaryNamespace: "" }, "list all keys");
    const limit = effectivePageSize(request.limit);
    const after = [...keyParams(allKeysStart(request)), limit + 1];
    const rows = await this.query<DbKeyVersion>(request.allStores ? "allKeysOfAllStores" : "allKeysOfStore", after);
    return allKeysPage(rows.map(toKeyVersion), limit);
  }

  async listOwed(limit: number, after?: KeyRef): Promise<KeyVersion[]> {
    const from = after === undefined ? ["", "", "", ""] : keyParams(after);
    return (await this.query<DbKeyVersion>("listOwed", [...from, limit])).map(toKeyVersion);
  }

  async countOwed(): Promise<number> {
    const [row] = await this.query<{ n: bigint }>("countOwed", []);
    return Number(row?.n ?? 0n);
  }

  async storeUsage(storeId: string): Promise<StoreUsage> {
    return usageOf((await this.query<DbUsage>("usage", [storeId]))[0]);
  }

  async groupUsage(storeId: string): Promise<GroupUsage> {
    const { from, to } = usageGroupOf(storeId);
    return groupUsageOf((await this.query<DbGroupUsage>("groupUsage", [from, to]))[0]);
  }

  /**
   * One transaction that locks the store's usage row first: a mutation committing meanwhile waits
   * for it (its triggers update that row at COMMIT), so it is in both the count and the record, or
   * in neither and adds its change to the recount afterwards.
   */
  async recountUsage(storeId: string): Promise<{ recorded: StoreUsage; counted: StoreUsage }> {
    return this.commits.schedule({ id: "", keys: [], bytes: 0, alone: true, oneStatement: false }, async (tx) => {
      await tx.query("createUsage", [storeId]);
      const recorded = usageOf((await tx.query<DbUsage>("lockUsage", [storeId])).rows[0]);
      const counted = usageOf((await tx.query<DbUsage>("countUsage", [storeId])).rows[0]);
      await tx.query("setUsage", [storeId, counted.keys, counted.bytes]);
      return { recorded, counted };
    });
  }

  async readChanges(request: ChangesRequest): Promise<ChangesPage> {
    const rows = await this.query<ChangeRow>("changes", [request.storeId, request.from, request.limit, request.values, request.maxBytes ?? null]);
    const bounds = rows[0]!;
    // A row with a sequence is a change (its LEFT JOIN matched): every change column is set.
    const changes = rows.filter((row): row is ChangeRow & DbChange => row.seq !== null).map((row) => toChange(row, request.values));
    return { changes, latest: bounds.latest, oldest: bounds.oldest };
  }

  async changeHeads(): Promise<Map<string, bigint>> {
    return new Map((await this.query<{ store_id: string; seq: bigint }>("heads", [])).map((row) => [row.store_id, row.seq]));
  }

  /** Without `now`, ages are measured by the database's clock, the one changes were stamped with. */
  async pruneChanges(retention: ChangeRetention, limit: number, now?: number): Promise<number> {
    const [row] = await this.query<{ n: bigint }>("prune", [retention.maxCount ?? null, retention.maxAgeMs ?? null, now ?? null, limit]);
    return Number(row?.n ?? 0n);
  }

  onChanges(listener: (committed: CommittedChanges) => void): () => void {
    return this.changeListeners.add(listener);
  }

  async highestVersion(): Promise<bigint> {
    const [row] = await this.query<{ v: bigint | null }>("highest", []);
    return row?.v ?? 0n;
  }

  /** One REPEATABLE READ transaction's view (see postgres-snapshot.ts). */
  snapshotRecords(signal?: AbortSignal): AsyncIterable<StoredRecord> {
    return postgresSnapshotRecords(this.pool, signal);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.commits.close();
    await this.pool.end().catch(() => undefined);
  }
}

/** Opens the store a `postgres://` or `postgresql://` URI names. */
export function openPostgresStore(uri: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  return PostgresStore.open(uri, options);
}
