//! Where a follower keeps how far it has applied each of its leader's stores: keys of the internal
//! store `_tierkv:follow` in its own primary, written in the transaction of the changes they cover
//! (so a crash never leaves a change applied and its position behind, or the reverse), and which
//! leader its last full copy came from.

import { createHash } from "node:crypto";
import { readOrAbsent } from "../store/read-or-absent.js";
import { scanAllKeys } from "../store/scan.js";
import type { KVStore, KeyRef, TxnOperation } from "../store/types.js";
import { INTERNAL_STORE_PREFIX } from "../store/names.js";

/** The internal store holding a follower's records (no request may name it; see `isInternalStore`). */
export const FOLLOW_STORE_ID = `${INTERNAL_STORE_PREFIX}follow`;

const POSITIONS = "positions";

/** Names the leader the last completed full copy came from; absent while none completed. */
const COPIED_FROM: KeyRef = { storeId: FOLLOW_STORE_ID, primaryNamespace: "copy", secondaryNamespace: "", key: "leader" };

function positionKey(key: string): KeyRef {
  return { storeId: FOLLOW_STORE_ID, primaryNamespace: POSITIONS, secondaryNamespace: "", key };
}

/** A leader's store id is any text: its position's key is a digest of it (the value names it). */
function positionRef(storeId: string): KeyRef {
  return positionKey(`s${createHash("sha256").update(storeId).digest("hex")}`);
}

interface PositionRecord {
  readonly store: string;
  /** The last sequence applied, as a decimal string (sequences may pass 2^53). */
  readonly applied: string;
}

/** The write recording that every change of leader store `storeId` up to `applied` is applied. */
export function positionWrite(storeId: string, applied: bigint): TxnOperation {
  const record: PositionRecord = { store: storeId, applied: applied.toString() };
  return { ...positionRef(storeId), kind: "write", value: Buffer.from(JSON.stringify(record)) };
}

/** Forgets which leader the last full copy came from: a copy that stops half-way is made again. */
export async function forgetCopy(primary: KVStore): Promise<void> {
  await primary.remove(COPIED_FROM, { exact: true });
}

/**
 * Records a completed full copy of `leader`: each store's position is its head noted before the
 * copy began, positions of other stores go, and the copy record names the leader. In batches of
 * `batch` operations, the copy record in the last: until it is written, a restart copies again.
 */
export async function recordCopy(primary: KVStore, heads: ReadonlyMap<string, bigint>, leader: string, batch: number): Promise<void> {
  const operations: TxnOperation[] = [...heads].map(([storeId, head]) => positionWrite(storeId, head));
  const kept = new Set(operations.map((operation) => operation.key));
  for await (const key of scanAllKeys(primary, { storeId: FOLLOW_STORE_ID })) {
    if (key.primaryNamespace === POSITIONS && !kept.has(key.key)) operations.push({ ...positionKey(key.key), kind: "remove" });
  }
  operations.push({ ...COPIED_FROM, kind: "write", value: Buffer.from(leader) });
  for (let i = 0; i < operations.length; i += batch) {
    await primary.txn({ checks: [], operations: operations.slice(i, i + batch), exact: true });
  }
}

function decode(value: Uint8Array): PositionRecord | undefined {
  try {
    const record = JSON.parse(Buffer.from(value).toString("utf8")) as Partial<PositionRecord>;
    if (typeof record.store === "string" && typeof record.applied === "string" && /^\d{1,20}$/.test(record.applied)) {
      return { store: record.store, applied: record.applied };
    }
  } catch {
    // Not JSON: unreadable, as below.
  }
  return undefined;
}

/** What a follower finds in its primary at start. */
export interface FollowerRecords {
  /** The last sequence applied per leader store. */
  readonly positions: Map<string, bigint>;
  /** The leader the last full copy came from; undefined when none completed (or a record is unreadable). */
  readonly copiedFrom: string | undefined;
}

/** Reads every position and the copy record from `primary`. */
export async function readRecords(primary: KVStore): Promise<FollowerRecords> {
  const positions = new Map<string, bigint>();
  let readable = true;
  for await (const key of scanAllKeys(primary, { storeId: FOLLOW_STORE_ID })) {
    if (key.primaryNamespace !== POSITIONS) continue;
    const stored = await readOrAbsent(primary, key);
    if (stored === undefined) continue;
    const record = decode(stored.value);
    if (record === undefined) readable = false;
    else positions.set(record.store, BigInt(record.applied));
  }
  const copied = await readOrAbsent(primary, COPIED_FROM);
  // An unreadable position cannot be resumed from: the follower copies its leader again.
  const copiedFrom = readable && copied !== undefined ? Buffer.from(copied.value).toString("utf8") : undefined;
  return { positions, copiedFrom };
}
