//! The in-memory change log of `MemoryStore` (contract §9): per store, its last sequence and the
//! changes kept, in sequence order with no gap, so a sequence is found by its offset. A put keeps
//! its value only while its key holds it, as the SQL backends do (the value lives in the row).

import { ChangeListeners } from "./change-listeners.js";
import { storeIdOf, type Change, type ChangeLog, type CommittedChanges, type ChangeRetention, type ChangesPage, type ChangesRequest, type KeyRef } from "./types.js";

/** A change as kept: its value dropped once a later change of its key supersedes it. */
type Kept = Omit<Change, "value" | "superseded"> & { value?: Uint8Array };

interface StoreLog {
  latest: bigint;
  /** Changes `latest - changes.length + 1 … latest`. */
  changes: Kept[];
}

function keyIdOf(change: Pick<Change, "storeId" | "primaryNamespace" | "secondaryNamespace" | "key">): string {
  return `${change.storeId}\0${change.primaryNamespace}\0${change.secondaryNamespace}\0${change.key}`;
}

export class MemoryChangeLog implements ChangeLog {
  private readonly stores = new Map<string, StoreLog>();
  private readonly listeners = new ChangeListeners();
  /** Stores changed since the last `flush`: listeners hear of them once per operation. */
  private changed = new Set<string>();
  /** Each key's latest put while it is current (its value is the key's). */
  private readonly currentPuts = new Map<string, Kept>();

  /** `keep: false` (an ephemeral cache tier): sequences are counted, no change is kept. */
  constructor(private readonly keep = true) {}

  append(ref: KeyRef, kind: Change["kind"], state: { version: bigint; revision: bigint }, value: Uint8Array | undefined): void {
    const storeId = storeIdOf(ref);
    let log = this.stores.get(storeId);
    if (log === undefined) {
      log = { latest: 0n, changes: [] };
      this.stores.set(storeId, log);
    }
    log.latest++;
    this.changed.add(storeId);
    if (!this.keep) return;
    const { primaryNamespace, secondaryNamespace, key } = ref;
    const change: Kept = {
      storeId,
      primaryNamespace,
      secondaryNamespace,
      key,
      seq: log.latest,
      kind,
      ...state,
      size: value?.byteLength ?? 0,
      ...(value !== undefined && { value }),
      time: Date.now(),
    };
    log.changes.push(change);
    const id = keyIdOf(change);
    const superseded = this.currentPuts.get(id);
    if (superseded !== undefined) delete superseded.value;
    if (kind === "put") this.currentPuts.set(id, change);
    else this.currentPuts.delete(id);
  }

  /** Tells listeners of the stores the operation that just ended changed. */
  flush(): void {
    if (this.changed.size === 0) return;
    const changed = this.changed;
    this.changed = new Set();
    this.listeners.notifyStores(changed);
  }

  async readChanges(request: ChangesRequest): Promise<ChangesPage> {
    const log = this.stores.get(request.storeId) ?? { latest: 0n, changes: [] };
    const oldest = log.latest - BigInt(log.changes.length) + 1n;
    const start = request.from < oldest ? 0 : Number(request.from - oldest);
    const changes: Change[] = [];
    let bytes = 0;
    for (const change of log.changes.slice(start, start + request.limit)) {
      const { value, ...rest } = change;
      if (!request.values || change.kind === "remove") changes.push(rest);
      else changes.push(value === undefined ? { ...rest, superseded: true } : { ...rest, value });
      bytes += change.size;
      if (request.values && request.maxBytes !== undefined && bytes >= request.maxBytes) break;
    }
    return { changes, latest: log.latest, oldest };
  }

  async changeHeads(): Promise<Map<string, bigint>> {
    return new Map([...this.stores].map(([storeId, log]) => [storeId, log.latest]));
  }

  async pruneChanges(retention: ChangeRetention, limit: number, now = Date.now()): Promise<number> {
    let pruned = 0;
    for (const log of this.stores.values()) {
      let drop = 0;
      if (retention.maxCount !== undefined) drop = Math.max(0, log.changes.length - retention.maxCount);
      if (retention.maxAgeMs !== undefined) {
        const cutoff = now - retention.maxAgeMs;
        while (drop < log.changes.length && log.changes[drop]!.time < cutoff) drop++;
      }
      drop = Math.min(drop, limit - pruned);
      for (const change of log.changes.splice(0, drop)) {
        if (this.currentPuts.get(keyIdOf(change)) === change) this.currentPuts.delete(keyIdOf(change));
      }
      pruned += drop;
    }
    return pruned;
  }

  onChanges(listener: (committed: CommittedChanges) => void): () => void {
    return this.listeners.add(listener);
  }
}
