//! Group commit for the PostgreSQL backend: mutations that arrive in the same turn of the event
//! loop share one transaction (bounded by count and bytes, spread over the free connections); a
//! key's mutations never run in two transactions at once; failed batches are split to find the
//! bad mutation; serialization failures and deadlocks are retried.

import type pg from "pg";
import { GROUP_COMMIT_MAX_BYTES, POSTGRES_MAX_TXN_ATTEMPTS } from "../limits.js";
import { StoreError } from "./errors.js";
import { isRetryable, postgresStoreError } from "./postgres-errors.js";
import { toKeyVersion, type DbKeyVersion } from "./db-rows.js";
import { byId, keyId, keyParams } from "./postgres-sql.js";
import { Tx, type Mutated } from "./postgres-txn.js";
import type { KeyRef } from "./types.js";


/** What a write that can share a multi-row statement needs. */
interface BatchableWrite {
  readonly ref: KeyRef;
  readonly value: Uint8Array;
  readonly version: bigint;
  readonly revision: bigint | undefined;
  /** Plain writes share a statement only with plain writes (and never carry a revision). */
  readonly plain: boolean;
  readonly owedToBackup: boolean;
}

/**
 * Values up to this size join a multi-row statement. Array parameters travel as text (values
 * hex-encoded, twice their size), so larger values are cheaper sent one statement each, as binary.
 */
const MULTI_ROW_MAX_VALUE_BYTES = 16 * 1024;

/**
 * The writes of `order` (units in key order) when all of them can go in one multi-row statement:
 * two or more versioned writes of distinct keys, small values, all with a revision given or all
 * without. Otherwise undefined: the units run one statement each.
 */
function multiRowWrites(order: readonly Unit[]): BatchableWrite[] | undefined {
  if (order.length < 2) return undefined;
  const writes: BatchableWrite[] = [];
  for (const [i, unit] of order.entries()) {
    const write = unit.write;
    if (write === undefined || write.value.byteLength > MULTI_ROW_MAX_VALUE_BYTES) return undefined;
    if (
      i > 0 &&
      (unit.id === order[i - 1]!.id || (write.revision === undefined) !== (writes[0]!.revision === undefined) || write.plain !== writes[0]!.plain)
    ) {
      return undefined;
    }
    writes.push(write);
  }
  return writes;
}

/** Applies `writes` (distinct keys, in key order) in one statement; their outcomes, in order. */
async function applyWritesTogether(tx: Tx, writes: readonly BatchableWrite[]): Promise<Mutated[]> {
  const columns: unknown[][] = [[], [], [], [], [], []];
  for (const write of writes) {
    keyParams(write.ref).forEach((part, i) => columns[i]!.push(part));
    columns[4]!.push(write.value);
    columns[5]!.push(write.version);
  }
  const given = writes[0]!.revision !== undefined;
  if (given) columns.push(writes.map((write) => write.revision));
  const name = given ? "writeManyRevisions" : writes[0]!.plain ? "writeManyPlain" : "writeMany";
  const applied = (await tx.query<DbKeyVersion>(tx.autocommit ? `${name}Logged` : name, columns)).rows;
  const appliedRows = new Map(applied.map((row) => [keyId(toKeyVersion(row)), row]));
  return writes.map((write) => {
    const row = appliedRows.get(keyId(write.ref));
    if (write.owedToBackup) tx.owe(write.ref, row?.version ?? write.version);
    if (row === undefined) return { outcome: "stale" };
    tx.put(write.ref, row.version, row.revision, write.value);
    return { outcome: "applied", version: row.version };
  });
}

/** A mutation (or Txn) waiting for a transaction. */
interface Unit {
  /** Position in the lock order (a Txn, alone in its transaction, locks its keys itself). */
  readonly id: string;
  /** Every key it touches: none of them may be in another running transaction. */
  readonly keys: readonly string[];
  readonly bytes: number;
  /** Runs alone in its transaction (a Txn). */
  readonly alone: boolean;
  /** Makes exactly one statement: alone in a batch, it needs no BEGIN and COMMIT. */
  readonly oneStatement: boolean;
  readonly run: (tx: Tx) => Promise<unknown>;
  /** Set on a versioned, non-exact write: it may join its batch's one multi-row statement. */
  readonly write?: BatchableWrite;
  readonly resolve: (result: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** Schedules mutations into shared transactions over `pool` and runs them. */
export class GroupCommit {
  private pending: Unit[] = [];
  /** Keys of the mutations in running transactions, with how many of those touch each. */
  private readonly busy = new Map<string, number>();
  private running = 0;
  private scheduled = false;
  private closed = false;
  private idle: Array<() => void> = [];
  private retried = 0;

  /** `committed`: told the stores each committed transaction changed, before its mutations resolve. */
  constructor(
    private readonly pool: pg.Pool,
    private readonly maxRunning: number,
    private readonly maxBatch: number,
    private readonly committed: (storeIds: ReadonlySet<string>) => void,
  ) {}

  /** Transactions run again after a serialization failure or deadlock (for metrics and tests). */
  get retriedTransactions(): number {
    return this.retried;
  }

  /** Refuses new work, commits what was accepted, and resolves once nothing runs. */
  async close(): Promise<void> {
    this.closed = true;
    // Mutations already accepted are committed, not dropped.
    this.pump();
    if (this.running > 0 || this.pending.length > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }


  enqueue<T>(ref: KeyRef, bytes: number, oneStatement: boolean, run: (tx: Tx) => Promise<T>, write?: BatchableWrite): Promise<T> {
    const id = keyId(ref);
    return this.schedule({ id, keys: [id], bytes, alone: false, oneStatement, ...(write !== undefined && { write }) }, run);
  }

  schedule<T>(unit: Omit<Unit, "run" | "resolve" | "reject">, run: (tx: Tx) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StoreError("unavailable", "the store is closed"));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ ...unit, run, resolve: resolve as (result: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // After the current I/O phase: every request already read from the sockets joins in.
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  /** Starts transactions for pending units while connections are free. */
  private pump(): void {
    while (this.running < this.maxRunning && this.pending.length > 0) {
      // Spread the waiting mutations over the free connections: every statement of a batch is a
      // round trip of its own, so one long batch on one connection would leave the others idle.
      const share = Math.ceil(this.pending.length / (this.maxRunning - this.running));
      const batch = this.takeBatch(Math.min(share, this.maxBatch));
      if (batch.length === 0) break;
      for (const unit of batch) for (const key of unit.keys) this.busy.set(key, (this.busy.get(key) ?? 0) + 1);
      this.running++;
      void this.commit(batch).finally(() => {
        for (const unit of batch) {
          for (const key of unit.keys) {
            const left = this.busy.get(key)! - 1;
            if (left === 0) this.busy.delete(key);
            else this.busy.set(key, left);
          }
        }
        this.running--;
        this.pump();
        if (this.running === 0 && this.pending.length === 0) for (const resolve of this.idle.splice(0)) resolve();
      });
    }
  }

  /**
   * The next transaction's units, in arrival order: bounded by count and bytes, none touching a
   * key of a running transaction or of an earlier unit left waiting (so a key's mutations keep
   * their order), and a Txn alone.
   */
  private takeBatch(size: number): Unit[] {
    const batch: Unit[] = [];
    const rest: Unit[] = [];
    const blocked = new Set<string>();
    let bytes = 0;
    for (const unit of this.pending) {
      const free = unit.keys.every((key) => !this.busy.has(key) && !blocked.has(key));
      const fits =
        batch.length < size &&
        !(batch.length > 0 && (unit.alone || batch[0]!.alone)) &&
        (batch.length === 0 || bytes + unit.bytes <= GROUP_COMMIT_MAX_BYTES);
      if (free && fits) {
        batch.push(unit);
        bytes += unit.bytes;
      } else {
        rest.push(unit);
        for (const key of unit.keys) blocked.add(key);
      }
    }
    this.pending = rest;
    return batch;
  }

  /** Runs `batch` in one transaction; one failing mutation does not fail its neighbours. */
  private async commit(batch: Unit[]): Promise<void> {
    let results: unknown[];
    try {
      results = await this.transaction(batch);
    } catch (error) {
      const failure = postgresStoreError(error);
      if (batch.length === 1 || failure.code === "unavailable") {
        for (const unit of batch) unit.reject(failure);
        return;
      }
      // Commit each alone to find the bad one.
      for (const unit of batch) {
        try {
          unit.resolve((await this.transaction([unit]))[0]);
        } catch (single) {
          unit.reject(postgresStoreError(single));
        }
      }
      return;
    }
    batch.forEach((unit, i) => unit.resolve(results[i]));
  }

  /**
   * One transaction over `batch` (sorted by key: the lock order), retried on serialization
   * failures and deadlocks. Returns the results in the batch's order. A lone mutation of one
   * statement runs without BEGIN and COMMIT: one round trip instead of three.
   */
  private async transaction(batch: readonly Unit[]): Promise<unknown[]> {
    const order = batch.map((unit, index) => ({ unit, index, id: unit.id })).sort(byId);
    // Versioned writes of distinct keys go in one multi-row statement: one round trip, not one each.
    const together = multiRowWrites(order.map(({ unit }) => unit));
    const autocommit = together !== undefined ? together.every((write) => !write.owedToBackup) : batch.length === 1 && batch[0]!.oneStatement;
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      let broken = false;
      try {
        if (!autocommit) await client.query("BEGIN");
        const tx = new Tx(client, autocommit);
        const results: unknown[] = new Array(batch.length);
        try {
          if (together !== undefined) {
            const outcomes = await applyWritesTogether(tx, together);
            order.forEach(({ index }, i) => (results[index] = outcomes[i]));
          } else {
            for (const { unit, index } of order) results[index] = await unit.run(tx);
          }
          await tx.finish();
          if (!autocommit) await client.query(tx.rollback ? "ROLLBACK" : "COMMIT");
        } catch (error) {
          if (!autocommit) await client.query("ROLLBACK").catch(() => {
            broken = true;
          });
          throw error;
        }
        this.committed(tx.changedStores);
        return results;
      } catch (error) {
        // A connection the server ended may still look usable for a moment: never pool it again.
        if (!isRetryable(error) && postgresStoreError(error).code === "unavailable") broken = true;
        if (!isRetryable(error) || attempt >= POSTGRES_MAX_TXN_ATTEMPTS) throw error;
        this.retried++;
        // Randomised, growing back-off, so the transactions that collided do not collide again.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 2 ** attempt * 2));
      } finally {
        client.release(broken);
      }
    }
  }
}
