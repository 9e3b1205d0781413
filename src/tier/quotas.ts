//! Per-store quotas (contract §7): most keys and most value bytes a tenant may hold. Usage is
//! read from the primary once per store, then kept up to date by the mutations that pass here.

import { quotaExceeded, StoreError } from "../store/errors.js";
import { readOrAbsent } from "../store/read-or-absent.js";
import { isStoreUsageReader, storeIdOf, type KVStore, type KeyRef, type MutationOptions, type StoreUsage } from "../store/types.js";

export type Quota = NonNullable<MutationOptions["quota"]>;

async function sizeOf(store: KVStore, ref: KeyRef): Promise<number | undefined> {
  return (await readOrAbsent(store, ref))?.value.byteLength;
}

export class StoreQuotas {
  /** Usage of stores whose mutations all passed here since it was read. */
  private readonly usage = new Map<string, StoreUsage>();
  /** The quota each store was last checked against (metrics show usage against it). */
  private readonly quotas = new Map<string, Quota>();

  constructor(private readonly primary: KVStore) {}

  private async usageOf(storeId: string, quota?: Quota): Promise<StoreUsage> {
    if (quota !== undefined) this.quotas.set(storeId, quota);
    const known = this.usage.get(storeId);
    if (known !== undefined) return known;
    if (!isStoreUsageReader(this.primary)) {
      throw new StoreError("failed-precondition", "quotas need a primary that can count a store's keys (sqlite:, memory:, postgres:)");
    }
    const read = await this.primary.storeUsage(storeId);
    this.usage.set(storeId, read);
    return read;
  }

  /** Usage of the stores counted here now (those with quotas) and their quotas, at most `limit` of them. */
  known(limit: number): Array<[string, StoreUsage, Quota | undefined]> {
    return [...this.usage].slice(0, limit).map(([storeId, usage]) => [storeId, usage, this.quotas.get(storeId)]);
  }

  /** Current usage of a store (for admin output). */
  current(storeId: string): Promise<StoreUsage> {
    return this.usageOf(storeId);
  }

  /**
   * Checks a write of `bytes` to `ref` against `quota` (inside the key's turn) and returns what
   * to record once the write is applied. Throws `resource-exhausted` naming the limit.
   */
  async admitWrite(ref: KeyRef, bytes: number, quota: Quota | undefined): Promise<(applied: boolean) => void> {
    const storeId = storeIdOf(ref);
    if (quota === undefined) return this.invalidator(storeId);
    const [usage, previous] = await Promise.all([this.usageOf(storeId, quota), sizeOf(this.primary, ref)]);
    const after = { keys: usage.keys + (previous === undefined ? 1 : 0), bytes: usage.bytes + bytes - (previous ?? 0) };
    if (quota.maxKeys !== undefined && after.keys > quota.maxKeys) {
      throw quotaExceeded(`store ${storeId} holds ${usage.keys} keys; its quota is ${quota.maxKeys} keys`);
    }
    if (quota.maxBytes !== undefined && after.bytes > quota.maxBytes && bytes > (previous ?? 0)) {
      throw quotaExceeded(
        `store ${storeId} holds ${usage.bytes} bytes of values; this write needs ${after.bytes - usage.bytes} more and its quota is ${quota.maxBytes} bytes`,
      );
    }
    return (applied) => {
      if (applied && this.usage.get(storeId) === usage) this.usage.set(storeId, after);
    };
  }

  /** Before a remove: what to record once it is applied. */
  async admitRemove(ref: KeyRef, quota: Quota | undefined): Promise<(applied: boolean) => void> {
    const storeId = storeIdOf(ref);
    if (quota === undefined) return this.invalidator(storeId);
    const [usage, previous] = await Promise.all([this.usageOf(storeId, quota), sizeOf(this.primary, ref)]);
    return (applied) => {
      if (!applied || previous === undefined || this.usage.get(storeId) !== usage) return;
      this.usage.set(storeId, { keys: usage.keys - 1, bytes: usage.bytes - previous });
    };
  }

  /**
   * Checks the writes of an atomic batch together against `quota` (inside the keys' turns). The
   * store's usage is read again after the batch.
   */
  async admitBatch(operations: readonly (KeyRef & { kind: "write" | "remove"; value?: Uint8Array })[], quota: Quota | undefined): Promise<() => void> {
    const storeId = operations[0] === undefined ? undefined : storeIdOf(operations[0]);
    const forget = (): void => {
      for (const op of operations) this.usage.delete(storeIdOf(op));
    };
    if (quota === undefined || storeId === undefined) return forget;
    const usage = await this.usageOf(storeId, quota);
    let { keys, bytes } = usage;
    for (const op of operations) {
      const previous = await sizeOf(this.primary, op);
      if (op.kind === "remove") {
        if (previous !== undefined) [keys, bytes] = [keys - 1, bytes - previous];
        continue;
      }
      [keys, bytes] = [keys + (previous === undefined ? 1 : 0), bytes + (op.value?.byteLength ?? 0) - (previous ?? 0)];
    }
    if (quota.maxKeys !== undefined && keys > quota.maxKeys && keys > usage.keys) {
      throw quotaExceeded(`store ${storeId} holds ${usage.keys} keys; the transaction would leave ${keys} and its quota is ${quota.maxKeys} keys`);
    }
    if (quota.maxBytes !== undefined && bytes > quota.maxBytes && bytes > usage.bytes) {
      throw quotaExceeded(`store ${storeId} holds ${usage.bytes} bytes of values; the transaction would leave ${bytes} and its quota is ${quota.maxBytes} bytes`);
    }
    return forget;
  }

  /** Forgets a store's usage (a mutation whose effect is unknown): it is read again when needed. */
  forget(ref: KeyRef): void {
    this.usage.delete(storeIdOf(ref));
  }

  /** A mutation that is not counted here makes the store's usage unknown until read again. */
  private invalidator(storeId: string): (applied: boolean) => void {
    return () => this.usage.delete(storeId);
  }
}
