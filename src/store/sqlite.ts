//! The SQLite backend (better-sqlite3): the embedded default for durable tiers.
//!
//! One table keyed by (store_id, primary_namespace, secondary_namespace, key) holding the value,
//! its creation sequence, the version that wrote it and its revision; a second table records keys
//! the backup tier owes (`BackupLedger`). WAL with synchronous=FULL: a write is on disk (WAL
//! fsynced) before its promise resolves. ListPage order: newest-created first.
//!
//! Group commit: mutations that arrive in the same turn of the event loop share one transaction
//! and so one fsync; none resolves before that commit is on disk. A commit takes a bounded batch
//! (by count and bytes), so it never holds the event loop for long; the rest wait for the next
//! turn. The fsync runs off the event loop (`sqlite-wal-sync.ts`): while it runs the next batch is
//! decoded and committed, and its own sync follows.
//!
//! Change log (`ChangeLog`, contract §9): every mutation that changes a row also appends a row to
//! `changes` in the same transaction, numbered by its store's counter in `change_heads`. One
//! connection commits everything, so sequence order is commit order. The log holds no values: a
//! put's value is read from `kv` while the key still holds it (`kv.change_seq`), so a write is
//! stored once (with values in the log, a 1 KiB write cost 35 µs of CPU instead of 19).

import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import {
  effectivePageSize,
  GROUP_COMMIT_MAX_BYTES,
  GROUP_COMMIT_MAX_MUTATIONS,
  LEDGER_SETTLE_DELAY_MS,
  SQLITE_BUSY_TIMEOUT_MS,
} from "../limits.js";
import { ChangeListeners } from "./change-listeners.js";
import { CHANGE_KIND_PUT, CHANGE_KIND_REMOVE, toChange, toKeyVersion, toStoredRecord, type DbChange, type DbKeyVersion, type DbRecord } from "./db-rows.js";
import { notFound, StoreError } from "./errors.js";
import { appliedVersion, checkQuota, firstFailedCheck, isStale, stateAfterWrite, usageChange, type StoredState } from "./mutation-rules.js";
import { allKeysPage, allKeysStart, decodeSequenceToken, sequencePage } from "./page-token.js";
import { preallocateWal, walBytesAtCheckpoint } from "./sqlite-wal.js";
import { WalSync } from "./sqlite-wal-sync.js";
import { groupChange, plusUsage, UsageChanges, usageGroupOf } from "./usage-group.js";
import {
  storeIdOf,
  VersionedReads,
  type AllKeysPage,
  type AllKeysRequest,
  type BackupLedger,
  type Change,
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
  type StateReporter,
  type StoredRecord,
  type StoreUsage,
  type StoreUsageReader,
  type TxnRequest,
  type TxnResult,
  type VersionedValue,
} from "./types.js";
import { formatPath, validateKey, validateNamespace, validateTxn } from "./validate.js";

/** `PRAGMA user_version` of the current schema; `migrate` upgrades anything older. */
export const SQLITE_SCHEMA_VERSION = 4;

export interface SqliteStoreOptions {
  /**
   * `FULL` (default): every commit is on disk before its mutations resolve (fsynced off the event
   * loop: `sqlite-wal-sync.ts`); `NORMAL` may lose the last commits on power loss.
   */
  readonly synchronous?: "FULL" | "NORMAL";
  /**
   * Extend the WAL to its checkpoint size on open (zeros, once), so commits never grow the file:
   * see `sqlite-wal.ts`. Costs ~16 MiB of disk; servers turn it on for durable stores.
   */
  readonly preallocateWal?: boolean;
  /**
   * Open an existing file of the current schema read-only (a snapshot being restored): it is
   * neither migrated nor switched to WAL, so its bytes stay as they are; mutations fail.
   */
  readonly readOnly?: boolean;
}

/**
 * Page size of a new file (an existing one keeps its own). 8 KiB, not SQLite's 4: a 64 KiB value
 * spans half as many overflow pages and WAL frames. Measured in process (this schema, WAL FULL,
 * commits of 4–16 writes, medians of 3): 64 KiB writes 69–109 instead of 98–133 µs of CPU each,
 * 1 KiB writes unchanged; 16 KiB pages cost 1 KiB writes 10–20 % more.
 */
export const SQLITE_PAGE_BYTES = 8192;

/** WAL bytes after which SQLite checkpoints and starts the log over (~16 MiB, 4000 pages of 4 KiB). */
const WAL_CHECKPOINT_BYTES = 4000 * 4096;

/** `wal_autocheckpoint` for a file of `pageSize`: the same WAL bytes whatever its page size. */
export function walCheckpointPages(pageSize: number): number {
  return Math.round(WAL_CHECKPOINT_BYTES / pageSize);
}

const MIGRATIONS: readonly string[] = [
  // 0 → 1: the initial schema.
  `CREATE TABLE kv (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     store_id TEXT NOT NULL,
     primary_namespace TEXT NOT NULL,
     secondary_namespace TEXT NOT NULL,
     key TEXT NOT NULL,
     value BLOB NOT NULL,
     version INTEGER NOT NULL,
     UNIQUE (store_id, primary_namespace, secondary_namespace, key)
   );
   CREATE INDEX kv_by_creation ON kv (store_id, primary_namespace, secondary_namespace, seq);`,
  // 1 → 2: revisions, and the backup ledger in a table of its own (version 1 kept owed keys as
  // empty values under a reserved store id, for the default tenant).
  `ALTER TABLE kv ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
   CREATE TABLE owed (
     store_id TEXT NOT NULL,
     primary_namespace TEXT NOT NULL,
     secondary_namespace TEXT NOT NULL,
     key TEXT NOT NULL,
     version INTEGER NOT NULL,
     PRIMARY KEY (store_id, primary_namespace, secondary_namespace, key)
   ) WITHOUT ROWID;
   INSERT INTO owed SELECT 'default', primary_namespace, secondary_namespace, key, 0
     FROM kv WHERE store_id = '_tierkv_owed_to_backup';
   DELETE FROM kv WHERE store_id = '_tierkv_owed_to_backup';
   CREATE TABLE clock (id INTEGER PRIMARY KEY CHECK (id = 0), highest_version INTEGER NOT NULL);
   INSERT INTO clock VALUES (0, (SELECT coalesce(max(version), 0) FROM kv));`,
  // 2 → 3: each store's usage, kept by every mutation's own transaction (quotas, StoreUsage).
  `CREATE TABLE usage (store_id TEXT PRIMARY KEY, keys INTEGER NOT NULL, bytes INTEGER NOT NULL) WITHOUT ROWID;
   INSERT INTO usage SELECT store_id, count(*), coalesce(sum(length(value)), 0) FROM kv GROUP BY store_id;`,
  // 3 → 4: the change log (Watch, followers), each store's last sequence, and the sequence of the
  // change that wrote each row; the log starts empty.
  `ALTER TABLE kv ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
   CREATE TABLE changes (
     store_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     primary_namespace TEXT NOT NULL,
     secondary_namespace TEXT NOT NULL,
     key TEXT NOT NULL,
     kind INTEGER NOT NULL,
     version INTEGER NOT NULL,
     revision INTEGER NOT NULL,
     size INTEGER NOT NULL,
     committed_at INTEGER NOT NULL,
     PRIMARY KEY (store_id, seq)
   ) WITHOUT ROWID;
   CREATE TABLE change_heads (store_id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;`,
];

/** What a caller may learn of a SQLite failure: the kind, never SQL text or a file path. */
export function sqliteStoreError(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  if (error instanceof Database.SqliteError) {
    const code = error.code;
    if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
      return new StoreError("unavailable", "the database is busy; retry", { cause: error });
    }
    if (code.startsWith("SQLITE_FULL")) return new StoreError("resource-exhausted", "the database's disk is full", { cause: error });
    if (code.startsWith("SQLITE_IOERR") || code.startsWith("SQLITE_READONLY") || code.startsWith("SQLITE_CANTOPEN")) {
      return new StoreError("unavailable", "the database could not be written (I/O error)", { cause: error });
    }
    return new StoreError("internal", "internal error", { cause: error });
  }
  if (error instanceof TypeError && /database connection is not open/.test(error.message)) {
    return new StoreError("unavailable", "the store is closed", { cause: error });
  }
  return StoreError.from(error);
}

function migrate(db: Database.Database): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new StoreError(
      "internal",
      `the database has schema version ${current}, newer than this tierkv understands (${MIGRATIONS.length})`,
    );
  }
  db.transaction(() => {
    for (let v = current; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
  })();
}

interface NamespaceParams {
  storeId: string;
  pn: string;
  sn: string;
}

interface KeyParams extends NamespaceParams {
  key: string;
}

/** A key's state with the size of its value (a bigint, as every integer of the statement). */
type SizedState = StoredState & { size: bigint };

function sizeOf(stored: SizedState | undefined): number | undefined {
  return stored === undefined ? undefined : Number(stored.size);
}

/** A mutation waiting for the next group commit. */
interface PendingMutation {
  readonly bytes: number;
  readonly apply: () => unknown;
  readonly resolve: (result: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** A mutation's outcome with what to tell its caller once the commit holding it is on disk. */
class Reported<T> {
  constructor(
    readonly outcome: T,
    readonly onCommitted: () => void,
  ) {}
}

/** What a queued mutation's `apply` returns: its result, its refusal, or its result to report. */
type Applied<T> = T | StoreError | Reported<T>;

/**
 * Ends a committed mutation's wait: a `StoreError` it returned is its refusal (it changed
 * nothing; its neighbours in the commit are unaffected), a `Reported` outcome tells its version.
 */
function settle(mutation: PendingMutation, result: unknown): void {
  if (result instanceof StoreError) return mutation.reject(result);
  if (result instanceof Reported) {
    result.onCommitted();
    return mutation.resolve(result.outcome);
  }
  mutation.resolve(result);
}

function namespaceParams(ns: NamespaceRef): NamespaceParams {
  return { storeId: storeIdOf(ns), pn: ns.primaryNamespace, sn: ns.secondaryNamespace };
}

function keyParams(ref: KeyRef): KeyParams {
  return { ...namespaceParams(ref), key: ref.key };
}

/**
 * A key's columns, bound by position to the statements every mutation and point read runs
 * (`KEY_IS`, then each statement's own values in the order its SQL names them). better-sqlite3
 * binds an array argument's items in turn, but each named parameter with a HasOwnProperty and a
 * Get through V8's API (better-sqlite3 12.11 src/util/binder.cpp:105-138 `BindObject`, :150
 * `BindArgs`): a 1 KiB write's state read and upsert cost 9.6 µs named against 5.4–5.7 µs
 * positional in a tight loop.
 */
type KeyArgs = [storeId: string, primaryNamespace: string, secondaryNamespace: string, key: string];

function keyArgs(ref: KeyRef): KeyArgs {
  return [storeIdOf(ref), ref.primaryNamespace, ref.secondaryNamespace, ref.key];
}

const KEY_IS = "store_id = ? AND primary_namespace = ? AND secondary_namespace = ? AND key = ?";

const FIRST_KEY: KeyParams = { storeId: "", pn: "", sn: "", key: "" };

function prepareStatements(db: Database.Database) {
  const where = "store_id = @storeId AND primary_namespace = @pn AND secondary_namespace = @sn";
  const allKeysColumns = "store_id, primary_namespace, secondary_namespace, key, version, revision";
  // Versions can exceed 2^53: integers are read as bigint where they appear.
  return {
    read: db
      .prepare<[KeyArgs], { value: Buffer; version: bigint; revision: bigint }>(`SELECT value, version, revision FROM kv WHERE ${KEY_IS}`)
      .safeIntegers(true),
    state: db.prepare<[KeyArgs], StoredState>(`SELECT version, revision FROM kv WHERE ${KEY_IS}`).safeIntegers(true),
    // The state a mutation decides on, with the size it replaces (usage).
    sizedState: db.prepare<[KeyArgs], SizedState>(`SELECT version, revision, length(value) AS size FROM kv WHERE ${KEY_IS}`).safeIntegers(true),
    upsert: db.prepare<[KeyArgs, value: Uint8Array, version: bigint, revision: bigint, changeSeq: bigint]>(
      `INSERT INTO kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision, change_seq)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (store_id, primary_namespace, secondary_namespace, key) DO UPDATE
         SET value = excluded.value, version = excluded.version, revision = excluded.revision, change_seq = excluded.change_seq`,
    ),
    remove: db.prepare<[KeyArgs]>(`DELETE FROM kv WHERE ${KEY_IS}`),
    list: db.prepare<[NamespaceParams & { limit: number }], string>(`SELECT key FROM kv WHERE ${where} LIMIT @limit`).pluck(),
    page: db.prepare<[NamespaceParams & { before: number; limit: number }], { key: string; seq: number }>(
      `SELECT key, seq FROM kv WHERE ${where} AND seq < @before ORDER BY seq DESC LIMIT @limit`,
    ),
    allKeysOfStore: db
      .prepare<[KeyParams & { limit: number }], DbKeyVersion>(
        `SELECT ${allKeysColumns} FROM kv
         WHERE store_id = @storeId AND (primary_namespace, secondary_namespace, key) > (@pn, @sn, @key)
         ORDER BY primary_namespace, secondary_namespace, key LIMIT @limit`,
      )
      .safeIntegers(true),
    allKeysOfAllStores: db
      .prepare<[KeyParams & { limit: number }], DbKeyVersion>(
        `SELECT ${allKeysColumns} FROM kv
         WHERE (store_id, primary_namespace, secondary_namespace, key) > (@storeId, @pn, @sn, @key)
         ORDER BY store_id, primary_namespace, secondary_namespace, key LIMIT @limit`,
      )
      .safeIntegers(true),
    recordOwed: db.prepare<[KeyArgs, version: bigint]>(
      `INSERT INTO owed (store_id, primary_namespace, secondary_namespace, key, version)
       VALUES (?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET version = max(owed.version, excluded.version)`,
    ),
    settleOwed: db.prepare<[KeyArgs, version: bigint]>(`DELETE FROM owed WHERE ${KEY_IS} AND version <= ?`),
    listOwed: db
      .prepare<[KeyParams & { limit: number }], DbKeyVersion>(
        `SELECT store_id, primary_namespace, secondary_namespace, key, version, 0 AS revision FROM owed
         WHERE (store_id, primary_namespace, secondary_namespace, key) > (@storeId, @pn, @sn, @key)
         ORDER BY store_id, primary_namespace, secondary_namespace, key LIMIT @limit`,
      )
      .safeIntegers(true),
    countOwed: db.prepare<[], number>(`SELECT count(*) FROM owed`).pluck(),
    count: db.prepare<[{ storeId: string }], { keys: number; bytes: number }>(
      `SELECT count(*) AS keys, coalesce(sum(length(value)), 0) AS bytes FROM kv WHERE store_id = @storeId`,
    ),
    usage: db.prepare<[{ storeId: string }], { keys: number; bytes: number }>(`SELECT keys, bytes FROM usage WHERE store_id = @storeId`),
    // A usage group's records: a range of the usage table's key (usage-group.ts).
    groupUsage: db.prepare<[{ from: string; to: string }], GroupUsage>(
      `SELECT coalesce(sum(keys), 0) AS keys, coalesce(sum(bytes), 0) AS bytes, count(*) FILTER (WHERE keys > 0) AS stores
       FROM usage WHERE store_id >= @from AND store_id < @to`,
    ),
    changeUsage: db.prepare<[{ storeId: string; keys: number; bytes: number }]>(
      `INSERT INTO usage (store_id, keys, bytes) VALUES (@storeId, @keys, @bytes)
       ON CONFLICT DO UPDATE SET keys = keys + excluded.keys, bytes = bytes + excluded.bytes`,
    ),
    setUsage: db.prepare<[{ storeId: string; keys: number; bytes: number }]>(
      `INSERT INTO usage (store_id, keys, bytes) VALUES (@storeId, @keys, @bytes)
       ON CONFLICT DO UPDATE SET keys = excluded.keys, bytes = excluded.bytes`,
    ),
    // A store whose last key went leaves no usage row behind.
    dropEmptyUsage: db.prepare<[{ storeId: string }]>(`DELETE FROM usage WHERE store_id = @storeId AND keys = 0`),
    // The clock's high-water mark: raised once per commit, read once on open.
    raiseHighest: db.prepare<[{ version: bigint }]>(
      `UPDATE clock SET highest_version = @version WHERE highest_version < @version`,
    ),
    highest: db.prepare<[], bigint>(`SELECT highest_version FROM clock`).pluck().safeIntegers(true),
    head: db.prepare<[{ storeId: string }], bigint>(`SELECT seq FROM change_heads WHERE store_id = @storeId`).pluck().safeIntegers(true),
    heads: db.prepare<[], { store_id: string; seq: bigint }>(`SELECT store_id, seq FROM change_heads`).safeIntegers(true),
    setHead: db.prepare<[{ storeId: string; seq: bigint }]>(
      `INSERT INTO change_heads (store_id, seq) VALUES (@storeId, @seq) ON CONFLICT DO UPDATE SET seq = excluded.seq`,
    ),
    logChange: db.prepare<[KeyArgs, seq: bigint, kind: number, version: bigint, revision: bigint, size: number, at: number]>(
      `INSERT INTO changes (store_id, primary_namespace, secondary_namespace, key, seq, kind, version, revision, size, committed_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    // A put's value while the key still holds it (the row's change_seq is the change's); NULL once
    // a later change superseded it.
    changes: db
      .prepare<[{ storeId: string; from: bigint; limit: number }], DbChange>(
        `SELECT c.store_id, c.seq, c.primary_namespace, c.secondary_namespace, c.key, c.kind, c.version, c.revision, c.size,
                kv.value, c.committed_at
         FROM changes c LEFT JOIN kv ON c.kind = ${CHANGE_KIND_PUT} AND kv.store_id = c.store_id
           AND kv.primary_namespace = c.primary_namespace AND kv.secondary_namespace = c.secondary_namespace
           AND kv.key = c.key AND kv.change_seq = c.seq
         WHERE c.store_id = @storeId AND c.seq >= @from ORDER BY c.seq LIMIT @limit`,
      )
      .safeIntegers(true),
    changesWithoutValues: db
      .prepare<[{ storeId: string; from: bigint; limit: number }], DbChange>(
        `SELECT store_id, seq, primary_namespace, secondary_namespace, key, kind, version, revision, size, NULL AS value, committed_at
         FROM changes WHERE store_id = @storeId AND seq >= @from ORDER BY seq LIMIT @limit`,
      )
      .safeIntegers(true),
    oldestChange: db.prepare<[{ storeId: string }], bigint | null>(`SELECT min(seq) FROM changes WHERE store_id = @storeId`).pluck().safeIntegers(true),
    // The first change young enough to keep: it walks the store's log from its oldest, so it reads
    // only what is about to be pruned (commit times grow with sequences).
    firstYoungChange: db
      .prepare<[{ storeId: string; cutoff: number }], bigint>(
        `SELECT seq FROM changes WHERE store_id = @storeId AND committed_at >= @cutoff ORDER BY seq LIMIT 1`,
      )
      .pluck()
      .safeIntegers(true),
    pruneBefore: db.prepare<[{ storeId: string; before: bigint; limit: number }]>(
      `DELETE FROM changes WHERE store_id = @storeId AND seq IN
         (SELECT seq FROM changes WHERE store_id = @storeId AND seq < @before ORDER BY seq LIMIT @limit)`,
    ),
  };
}

/** Rows a snapshot reads per statement: the event loop runs between pages. */
const SNAPSHOT_PAGE_ROWS = 256;

export class SqliteStore extends VersionedReads implements KVStore, BackupLedger, StoreUsageReader, SnapshotSource, ChangeLog, StateReporter {
  readonly reportsState = true;
  private readonly db: Database.Database;
  private readonly stmt: ReturnType<typeof prepareStatements>;
  private pending: PendingMutation[] = [];
  private commitScheduled = false;
  /** Settles of owed keys riding the next commit; the timer commits them when none comes. */
  private settles: PendingMutation[] = [];
  private settleTimer: NodeJS.Timeout | undefined;
  /** Highest version the transaction being built applies (raises the clock row once per commit). */
  private batchHighest = 0n;
  /** Usage changes of the transaction being built, per store, written once per commit. */
  private readonly batchUsage = new UsageChanges();
  /**
   * The changes the transaction being built logs, per store in sequence order: each store's head is
   * written once per commit, and listeners are handed them so watchers need not read them back.
   */
  private readonly batchChanges = new Map<string, Change[]>();
  /** The commit time of the transaction being built (ms). */
  private batchTime = 0;
  private readonly changeListeners = new ChangeListeners();
  /** `close` has begun: no new mutation is accepted. */
  private closing = false;
  /** Syncs the WAL of a durable file off the event loop; undefined when SQLite syncs (or nothing does). */
  private readonly walSync: WalSync | undefined;
  /** Applies a batch in one transaction (made once: better-sqlite3 wraps it in BEGIN/COMMIT). */
  private readonly applyAll: (batch: readonly PendingMutation[]) => unknown[];

  /** Opens (creating file, directory and schema when missing) the database at `path`. */
  constructor(
    private readonly path: string,
    options: SqliteStoreOptions = {},
  ) {
    super();
    if (options.readOnly) {
      this.db = new Database(path, { readonly: true, fileMustExist: true });
      let schema: unknown;
      try {
        schema = this.db.pragma("user_version", { simple: true });
      } catch {
        schema = undefined; // not a SQLite database at all
      }
      if (schema !== MIGRATIONS.length) {
        this.db.close();
        throw new StoreError("invalid-argument", "not a tierkv SQLite store of the current schema");
      }
    } else {
      if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
      this.db = new Database(path);
      this.db.pragma(`page_size = ${SQLITE_PAGE_BYTES}`); // takes effect only in a new file
      this.db.pragma("journal_mode = WAL");
      this.db.pragma(`synchronous = ${options.synchronous ?? "FULL"}`);
    }
    // A busy wait blocks the whole event loop: keep it short and report `unavailable` instead.
    this.db.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    // Reads through a memory map skip a read() per page; a 64 MiB page cache keeps the index and
    // hot rows; checkpoints every ~16 MiB of WAL (not 4) cut the copy-back and its fsync fourfold.
    // None of these affects durability: commits still fsync the WAL.
    this.db.pragma("mmap_size = 268435456");
    this.db.pragma("cache_size = -65536");
    const pageSize = this.db.pragma("page_size", { simple: true }) as number;
    this.db.pragma(`wal_autocheckpoint = ${walCheckpointPages(pageSize)}`);
    if (!options.readOnly) migrate(this.db);
    if (options.preallocateWal && !options.readOnly && path !== ":memory:") {
      preallocateWal(this.db, `${path}-wal`, walBytesAtCheckpoint(pageSize, walCheckpointPages(pageSize)));
    }
    if (!options.readOnly && path !== ":memory:" && (options.synchronous ?? "FULL") === "FULL") {
      // From here on this store syncs each commit itself, off the event loop (sqlite-wal-sync.ts).
      // NORMAL, not OFF: in WAL mode it still syncs every checkpoint (the WAL before, the database
      // after) and the WAL's header when the log starts over, before frames are written behind it.
      this.db.pragma("synchronous = NORMAL");
      this.walSync = new WalSync(path);
    }
    this.applyAll = this.db.transaction((batch: readonly PendingMutation[]) => {
      this.batchHighest = 0n;
      this.batchUsage.clear();
      this.batchChanges.clear();
      this.batchTime = Date.now();
      const results = batch.map((mutation) => mutation.apply());
      for (const [storeId, changes] of this.batchChanges) this.stmt.setHead.run({ storeId, seq: changes.at(-1)!.seq });
      if (this.batchHighest > 0n) this.stmt.raiseHighest.run({ version: this.batchHighest });
      for (const { stores } of this.batchUsage.byGroup()) {
        for (const [storeId, change] of stores) {
          this.stmt.changeUsage.run({ storeId, keys: change.keys, bytes: change.bytes });
          if (change.keys < 0) this.stmt.dropEmptyUsage.run({ storeId });
        }
      }
      return results;
    });
    this.stmt = prepareStatements(this.db);
  }

  /** Runs a read, turning SQLite's errors into ones a caller may see. */
  private guarded<T>(read: () => T): T {
    try {
      return read();
    } catch (error) {
      throw sqliteStoreError(error);
    }
  }

  /**
   * A read's answer, given once every commit it could have seen is on disk: a commit is visible
   * here before its sync returns (sqlite-wal-sync.ts), and no reader may see what a crash could undo.
   */
  private async answer<T>(read: () => T): Promise<T> {
    const result = this.guarded(read);
    const durable = this.walSync?.durable();
    if (durable !== undefined) await durable;
    return result;
  }

  async readVersioned(ref: KeyRef): Promise<VersionedValue> {
    validateKey(ref, "read");
    const row = await this.answer(() => this.stmt.read.get(keyArgs(ref)));
    if (row === undefined) throw notFound("read", formatPath(ref));
    return row;
  }

  async readState(ref: KeyRef): Promise<KeyState | undefined> {
    validateKey(ref, "read");
    return this.answer(() => this.stmt.state.get(keyArgs(ref)));
  }

  async write(ref: KeyRef, value: Uint8Array, options: MutationOptions = {}): Promise<MutationOutcome> {
    validateKey(ref, "write");
    return this.enqueue(value.byteLength, () => {
      const stored = this.stmt.sizedState.get(keyArgs(ref));
      if (!isStale(stored, options) && options.quota !== undefined) {
        const changes = new UsageChanges();
        changes.add(storeIdOf(ref), usageChange(sizeOf(stored), value.byteLength));
        const refused = this.quotaRefusal(changes, options.quota);
        if (refused !== undefined) return refused;
      }
      const written = this.applyWrite(ref, value, options, stored);
      this.recordOwed(ref, written === "stale" ? options.version : written.version, options.owedToBackup);
      return written === "stale" ? this.reported("stale", stored!, options) : this.reported("applied", written, options);
    });
  }

  async remove(ref: KeyRef, options: RemoveOptions = {}): Promise<MutationOutcome> {
    validateKey(ref, "remove");
    // A lazy remove rides the same group commit: it costs no fsync of its own, so there is
    // nothing to gain from deferring it further.
    return this.enqueue(0, () => {
      const stored = this.stmt.sizedState.get(keyArgs(ref));
      const removed = this.applyRemove(ref, options.exact ? {} : options, stored);
      this.recordOwed(ref, typeof removed === "bigint" ? removed : options.exact ? undefined : options.version, options.owedToBackup);
      if (removed === "stale") return this.reported("stale", stored!, options);
      return typeof removed === "bigint" ? this.reported("applied", { version: removed, revision: 0n }, options) : "applied";
    });
  }

  /**
   * A mutation's outcome, telling the caller (if it asked) the state it left once the commit is on
   * disk: `onVersion` (applied only) and `onState` run when it resolves, never for a failed commit.
   */
  private reported(outcome: MutationOutcome, state: StoredState, options: Pick<MutationOptions, "onVersion" | "onState">): Applied<MutationOutcome> {
    const { onVersion, onState } = options;
    if (onState === undefined && (onVersion === undefined || outcome === "stale")) return outcome;
    return new Reported<MutationOutcome>(outcome, () => {
      if (outcome === "applied") onVersion?.(state.version);
      onState?.({ version: state.version, revision: state.revision });
    });
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    validateTxn(request);
    const bytes = request.operations.reduce((sum, op) => sum + (op.kind === "write" ? op.value.byteLength : 0), 0);
    return this.enqueue(bytes, (): Applied<TxnResult> => {
      const failedCheck = firstFailedCheck(request.checks, (check) => this.stmt.state.get(keyArgs(check)));
      if (failedCheck >= 0) return { succeeded: false, failedCheck };
      const stored = request.operations.map((operation) => this.stmt.sizedState.get(keyArgs(operation)));
      if (request.quota !== undefined) {
        // The batch's keys are distinct: its change per store is the sum of its operations'.
        const changes = new UsageChanges();
        request.operations.forEach((operation, i) => {
          if (isStale(stored[i], { version: operation.version ?? request.version, plain: request.plain && operation.version === undefined })) return;
          changes.add(storeIdOf(operation), usageChange(sizeOf(stored[i]), operation.kind === "write" ? operation.value.byteLength : undefined));
        });
        const refused = this.quotaRefusal(changes, request.quota);
        if (refused !== undefined) return refused;
      }
      const outcomes: MutationOutcome[] = [];
      const revisions: bigint[] = [];
      const versions: bigint[] = [];
      request.operations.forEach((operation, i) => {
        const options = { version: operation.version ?? request.version, plain: request.plain && operation.version === undefined, exact: request.exact };
        // A stale operation reports the stored version it lost to.
        let version: bigint | undefined;
        if (operation.kind === "write") {
          const written = this.applyWrite(operation, operation.value, { ...options, revision: operation.revision }, stored[i]);
          outcomes.push(written === "stale" ? "stale" : "applied");
          revisions.push(written === "stale" ? stored[i]!.revision : written.revision);
          version = written === "stale" ? stored[i]!.version : written.version;
        } else {
          const removed = this.applyRemove(operation, options, stored[i]);
          outcomes.push(removed === "stale" ? "stale" : "applied");
          revisions.push(0n);
          version = removed === "stale" ? stored[i]!.version : typeof removed === "bigint" ? removed : undefined;
        }
        versions.push(version ?? 0n);
        this.recordOwed(operation, version, request.owedToBackup);
      });
      return { succeeded: true, outcomes, revisions, versions };
    });
  }

  /** A store's keys as the transaction being built sees them: the record plus this commit's changes so far. */
  private keysOf(storeId: string): number {
    return (this.stmt.usage.get({ storeId })?.keys ?? 0) + (this.batchUsage.of(storeId)?.keys ?? 0);
  }

  /**
   * The refusal of `changes` past `quota` (returned, not thrown: the rest of the commit goes on).
   * Each group's usage is the range of its records plus this commit's changes of its stores so far.
   */
  private quotaRefusal(changes: UsageChanges, quota: Quota): StoreError | undefined {
    try {
      for (const { group, stores } of changes.byGroup()) {
        const recorded = this.stmt.groupUsage.get({ from: group.from, to: group.to }) ?? { keys: 0, bytes: 0, stores: 0 };
        const pending = groupChange(this.batchUsage.inGroup(group), (storeId) => this.stmt.usage.get({ storeId })?.keys ?? 0);
        checkQuota(group, plusUsage(recorded, pending), groupChange(stores, (storeId) => this.keysOf(storeId)), quota);
      }
      return undefined;
    } catch (error) {
      return StoreError.from(error);
    }
  }

  private changeUsage(ref: KeyRef, storedBytes: number | undefined, newBytes: number | undefined): void {
    this.batchUsage.add(storeIdOf(ref), usageChange(storedBytes, newBytes));
  }

  /** Applies a write in the transaction being built: the state it stored, or "stale". */
  private applyWrite(
    ref: KeyRef,
    value: Uint8Array,
    options: Pick<MutationOptions, "version" | "plain" | "revision" | "exact">,
    stored: SizedState | undefined,
  ): StoredState | "stale" {
    if (isStale(stored, options)) return "stale";
    const state = stateAfterWrite(stored, options);
    const changeSeq = this.logChange(ref, CHANGE_KIND_PUT, state, value.byteLength);
    this.stmt.upsert.run(keyArgs(ref), value, state.version, state.revision, changeSeq);
    this.changeUsage(ref, sizeOf(stored), value.byteLength);
    this.raiseHighest(state.version);
    return state;
  }

  /** Applies a remove: the version it was applied at ("applied" for one without a version), or "stale". */
  private applyRemove(
    ref: KeyRef,
    options: Pick<MutationOptions, "version" | "plain" | "exact">,
    stored: SizedState | undefined = this.stmt.sizedState.get(keyArgs(ref)),
  ): bigint | "applied" | "stale" {
    if (isStale(stored, options)) return "stale";
    const version = appliedVersion(stored, options);
    if (stored !== undefined) {
      this.stmt.remove.run(keyArgs(ref));
      this.logChange(ref, CHANGE_KIND_REMOVE, { version: version ?? 0n, revision: 0n }, 0);
      this.changeUsage(ref, sizeOf(stored), undefined);
      this.raiseHighest(version);
    }
    return version ?? "applied";
  }

  /** Appends a change to the log in the transaction being built; its sequence, the store's next. */
  private logChange(ref: KeyRef, kind: number, state: StoredState, size: number): bigint {
    const storeId = storeIdOf(ref);
    let changes = this.batchChanges.get(storeId);
    if (changes === undefined) {
      changes = [];
      this.batchChanges.set(storeId, changes);
    }
    const seq = (changes.at(-1)?.seq ?? this.stmt.head.get({ storeId }) ?? 0n) + 1n;
    this.stmt.logChange.run(keyArgs(ref), seq, kind, state.version, state.revision, size, this.batchTime);
    const { primaryNamespace, secondaryNamespace, key } = ref;
    changes.push({ storeId, primaryNamespace, secondaryNamespace, key, seq, kind: kind === CHANGE_KIND_PUT ? "put" : "remove", version: state.version, revision: state.revision, size, time: this.batchTime });
    return seq;
  }

  private raiseHighest(version: bigint | undefined): void {
    if (version !== undefined && version > this.batchHighest) this.batchHighest = version;
  }

  private recordOwed(ref: KeyRef, version: bigint | undefined, owedToBackup: boolean | undefined): void {
    if (owedToBackup) this.stmt.recordOwed.run(keyArgs(ref), version ?? 0n);
  }

  /** Queues `apply` for the next group commit; resolves with its result once committed (fsynced). */
  private enqueue<T>(bytes: number, apply: () => Applied<T>): Promise<T> {
    if (!this.db.open || this.closing) return Promise.reject(new StoreError("unavailable", "the store is closed"));
    if (this.walSync?.failure !== undefined) return Promise.reject(this.walSync.failure);
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ bytes, apply, resolve: resolve as (result: unknown) => void, reject });
      this.scheduleCommit();
    });
  }

  private scheduleCommit(): void {
    if (this.commitScheduled) return;
    this.commitScheduled = true;
    // After the current I/O phase: every request already read from the sockets joins in.
    setImmediate(() => {
      // While the WAL syncs, the batch grows instead: the next commit starts with the next sync,
      // as when the sync blocked the event loop. Committing meanwhile made commits of a few
      // mutations, each writing the same log, head and usage pages again (more CPU per write).
      if (this.walSync?.syncing === true) return this.walSync.whenSynced(() => this.commit());
      this.commit();
    });
  }

  /** Commits the next bounded batch of pending mutations; schedules another commit for the rest. */
  private commit(): void {
    this.commitScheduled = false;
    const failure = this.walSync?.failure;
    if (failure !== undefined) {
      for (const mutation of [...this.pending.splice(0), ...this.settles.splice(0)]) mutation.reject(failure);
      return;
    }
    let count = 0;
    let bytes = 0;
    while (count < this.pending.length && count < GROUP_COMMIT_MAX_MUTATIONS) {
      if (count > 0 && bytes + this.pending[count]!.bytes > GROUP_COMMIT_MAX_BYTES) break;
      bytes += this.pending[count]!.bytes;
      count++;
    }
    const batch = this.pending.splice(0, count);
    if (this.pending.length > 0) this.scheduleCommit();
    if (this.settles.length > 0) {
      batch.push(...this.settles);
      this.settles = [];
      clearTimeout(this.settleTimer);
      this.settleTimer = undefined;
    }
    if (batch.length === 0) return;
    let results: unknown[];
    try {
      results = this.applyAll(batch);
    } catch {
      // One bad mutation must not fail its neighbours: commit each alone to find it.
      for (const mutation of batch) {
        let result: unknown;
        try {
          [result] = this.applyAll([mutation]);
        } catch (error) {
          mutation.reject(sqliteStoreError(error));
          continue;
        }
        this.afterCommit([mutation], [result]);
      }
      return;
    }
    this.afterCommit(batch, results);
  }

  /** Once a committed batch is on disk: tells the listeners and resolves its mutations. */
  private afterCommit(batch: readonly PendingMutation[], results: readonly unknown[]): void {
    // Synced off the loop, the next commit refills the map before this one is on disk: a copy.
    const changes = this.walSync === undefined ? this.batchChanges : new Map(this.batchChanges);
    const done = (): void => {
      this.changeListeners.notify(changes);
      batch.forEach((mutation, i) => settle(mutation, results[i]));
    };
    if (this.walSync === undefined) return done();
    this.walSync.commit().then(done, (error: unknown) => {
      for (const mutation of batch) mutation.reject(error);
    });
  }

  async list(ns: NamespaceRef, options: ListOptions = {}): Promise<string[]> {
    validateNamespace(ns, "list");
    return this.answer(() => this.stmt.list.all({ ...namespaceParams(ns), limit: options.limit ?? -1 }));
  }

  async listPage(ns: NamespaceRef, page: PageRequest = {}): Promise<Page> {
    validateNamespace(ns, "list");
    const before = page.pageToken ? decodeSequenceToken(ns, page.pageToken) : Number.MAX_SAFE_INTEGER;
    const size = effectivePageSize(page.pageSize);
    return sequencePage(ns, await this.answer(() => this.stmt.page.all({ ...namespaceParams(ns), before, limit: size + 1 })), size);
  }

  async listAllKeys(request: AllKeysRequest = {}): Promise<AllKeysPage> {
    if (!request.allStores) validateNamespace({ storeId: storeIdOf(request), primaryNamespace: "", secondaryNamespace: "" }, "list all keys");
    const limit = effectivePageSize(request.limit);
    const after = { ...keyParams(allKeysStart(request)), limit: limit + 1 };
    const statement = request.allStores ? this.stmt.allKeysOfAllStores : this.stmt.allKeysOfStore;
    return allKeysPage((await this.answer(() => statement.all(after))).map(toKeyVersion), limit);
  }

  /**
   * Rides the next commit instead of making one (and an fsync) of its own: the backup acknowledged
   * the mutation, so a crash before that commit only leaves a record that replays the key again.
   * Resolves once committed; the ledger's readers commit waiting settles first.
   */
  async settleOwed(ref: KeyRef, version: bigint): Promise<void> {
    if (!this.db.open || this.closing) throw new StoreError("unavailable", "the store is closed");
    await new Promise<unknown>((resolve, reject) => {
      this.settles.push({ bytes: 0, apply: () => this.deleteOwed(ref, version), resolve, reject });
      this.settleTimer ??= setTimeout(() => this.scheduleCommit(), LEDGER_SETTLE_DELAY_MS).unref();
    });
  }

  private deleteOwed(ref: KeyRef, version: bigint): void {
    this.stmt.settleOwed.run(keyArgs(ref), version);
  }

  async listOwed(limit: number, after?: KeyRef): Promise<KeyVersion[]> {
    if (this.settles.length > 0) this.commit();
    const from = after === undefined ? FIRST_KEY : keyParams(after);
    return (await this.answer(() => this.stmt.listOwed.all({ ...from, limit }))).map(toKeyVersion);
  }

  async countOwed(): Promise<number> {
    if (this.settles.length > 0) this.commit();
    return this.answer(() => this.stmt.countOwed.get() ?? 0);
  }

  async storeUsage(storeId: string): Promise<StoreUsage> {
    return this.answer(() => this.stmt.usage.get({ storeId }) ?? { keys: 0, bytes: 0 });
  }

  async groupUsage(storeId: string): Promise<GroupUsage> {
    const { from, to } = usageGroupOf(storeId);
    return this.answer(() => this.stmt.groupUsage.get({ from, to }) ?? { keys: 0, bytes: 0, stores: 0 });
  }

  /** In the commit order of mutations, so no write slips between the count and the record. */
  async recountUsage(storeId: string): Promise<{ recorded: StoreUsage; counted: StoreUsage }> {
    return this.enqueue(0, () => {
      const recorded = this.stmt.usage.get({ storeId }) ?? { keys: 0, bytes: 0 };
      const counted = this.stmt.count.get({ storeId }) ?? { keys: 0, bytes: 0 };
      this.stmt.setUsage.run({ storeId, ...counted });
      this.stmt.dropEmptyUsage.run({ storeId });
      return { recorded, counted };
    });
  }

  async readChanges(request: ChangesRequest): Promise<ChangesPage> {
    // One synchronous read: no commit of this connection can come between its statements.
    return this.answer(() => {
      const statement = request.values ? this.stmt.changes : this.stmt.changesWithoutValues;
      const changes: Change[] = [];
      let bytes = 0;
      for (const row of statement.iterate({ storeId: request.storeId, from: request.from, limit: request.limit })) {
        changes.push(toChange(row, request.values));
        bytes += Number(row.size);
        if (request.values && request.maxBytes !== undefined && bytes >= request.maxBytes) break;
      }
      const latest = this.stmt.head.get({ storeId: request.storeId }) ?? 0n;
      const oldest = this.stmt.oldestChange.get({ storeId: request.storeId }) ?? latest + 1n;
      return { changes, latest, oldest };
    });
  }

  async changeHeads(): Promise<Map<string, bigint>> {
    return this.answer(() => new Map(this.stmt.heads.all().map((row) => [row.store_id, row.seq])));
  }

  async pruneChanges(retention: ChangeRetention, limit: number, now = Date.now()): Promise<number> {
    if (this.walSync?.failure !== undefined) throw this.walSync.failure;
    const pruned = this.guarded(() =>
      this.db.transaction(() => {
        let pruned = 0;
        for (const { store_id: storeId, seq: latest } of this.stmt.heads.all()) {
          if (pruned >= limit) break;
          let before = 0n;
          if (retention.maxCount !== undefined) before = latest - BigInt(retention.maxCount) + 1n;
          if (retention.maxAgeMs !== undefined) {
            const young = this.stmt.firstYoungChange.get({ storeId, cutoff: now - retention.maxAgeMs }) ?? latest + 1n;
            if (young > before) before = young;
          }
          if (before > 1n) pruned += this.stmt.pruneBefore.run({ storeId, before, limit: limit - pruned }).changes;
        }
        return pruned;
      })(),
    );
    // A commit of its own (not a group commit's): synced like one before it answers.
    await this.walSync?.commit();
    return pruned;
  }

  onChanges(listener: (committed: CommittedChanges) => void): () => void {
    return this.changeListeners.add(listener);
  }

  async highestVersion(): Promise<bigint> {
    return this.answer(() => this.stmt.highest.get() ?? 0n);
  }

  /**
   * Every key from one read transaction on a read-only connection of its own: in WAL mode it
   * sees the database as of its first read while this connection goes on committing (the WAL
   * cannot be checkpointed past that point until it ends). An in-memory database has no second
   * connection: it is read at once, which no commit can interleave with.
   */
  async *snapshotRecords(signal?: AbortSignal): AsyncGenerator<StoredRecord> {
    const columns = "store_id, primary_namespace, secondary_namespace, key, value, version, revision";
    const order = "ORDER BY store_id, primary_namespace, secondary_namespace, key";
    if (this.path === ":memory:") {
      const rows = this.guarded(() => this.db.prepare<[], DbRecord>(`SELECT ${columns} FROM kv ${order}`).safeIntegers(true).all());
      yield* rows.map(toStoredRecord);
      return;
    }
    const reader = this.guarded(() => new Database(this.path, { readonly: true, fileMustExist: true }));
    try {
      reader.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
      const page = reader
        .prepare<[KeyParams & { limit: number }], DbRecord>(
          `SELECT ${columns} FROM kv
           WHERE (store_id, primary_namespace, secondary_namespace, key) > (@storeId, @pn, @sn, @key) ${order} LIMIT @limit`,
        )
        .safeIntegers(true);
      this.guarded(() => reader.exec("BEGIN"));
      let after = FIRST_KEY;
      for (let first = true; ; first = false) {
        signal?.throwIfAborted();
        const rows = this.guarded(() => page.all({ ...after, limit: SNAPSHOT_PAGE_ROWS }));
        // The first read fixed the transaction's view: nothing it shows may be undone by a crash.
        if (first) await this.walSync?.durable();
        yield* rows.map(toStoredRecord);
        const last = rows.at(-1);
        if (rows.length < SNAPSHOT_PAGE_ROWS || last === undefined) break;
        after = { storeId: last.store_id, pn: last.primary_namespace, sn: last.secondary_namespace, key: last.key };
      }
    } finally {
      reader.close();
    }
  }

  async close(): Promise<void> {
    // Nothing new from here on; mutations already accepted are committed, not dropped.
    this.closing = true;
    while (this.pending.length > 0 || this.settles.length > 0) this.commit();
    await this.walSync?.durable()?.catch(() => undefined);
    if (this.walSync?.failure !== undefined) {
      // Closing would checkpoint WAL frames the failed sync may have lost into the database and
      // remove the WAL. Left open, the handle goes with the process, and SQLite recovers the WAL
      // from what is on disk at the next open.
      return;
    }
    if (this.db.open) this.db.close();
    this.walSync?.close();
  }
}
