//! Keys owed to the backup (degraded policy): acknowledged from the primary alone, recorded
//! durably so a restart does not forget them, and replayed when the backup returns.

import { scanAllKeys } from "../store/scan.js";
import type { KVStore, KeyRef, KeyVersion } from "../store/types.js";

/** The tenant id under which the primary's database records owed keys, apart from user data. */
export const OWED_KEYS_STORE_ID = "_tierkv_owed_to_backup";

/**
 * A set of keys kept in a KVStore of its own (the primary's database under another store id): a
 * key's presence means the backup may lack the primary's current state of it. The value is empty;
 * what to copy is read from the primary at replay time.
 */
export class OwedKeys {
  private count = 0;

  private constructor(private readonly store: KVStore) {}

  /** Opens the set and counts what earlier runs left owed. */
  static async open(store: KVStore): Promise<OwedKeys> {
    const owed = new OwedKeys(store);
    for await (const _ of owed.keys()) owed.count++;
    return owed;
  }

  /** Keys owed now (the backlog). */
  get size(): number {
    return this.count;
  }

  /** Records `ref` as owed; resolves once that is durable. */
  async add(ref: KeyRef): Promise<void> {
    const known = await this.store.read(ref).then(
      () => true,
      () => false,
    );
    await this.store.write(ref, new Uint8Array());
    if (!known) this.count++;
  }

  /** Forgets `ref` once the backup has the primary's state of it. */
  async settle(ref: KeyRef): Promise<void> {
    const known = await this.store.read(ref).then(
      () => true,
      () => false,
    );
    if (!known) return;
    await this.store.remove(ref);
    this.count--;
  }

  /** Every owed key, in key order. */
  keys(): AsyncGenerator<KeyVersion, void, undefined> {
    return scanAllKeys(this.store);
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
