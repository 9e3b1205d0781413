//! The quotas the tiered store has seen, per usage group (contract §6.3: a store, or a VSS user's
//! stores). Backends decide quotas in the transaction that applies each mutation, against a usage
//! record they keep; this only remembers which groups have a quota, so the per-store metrics can
//! show usage beside it.

import type { Quota } from "../store/types.js";
import { usageGroupOf } from "../store/usage-group.js";

/** Most stores remembered; the least recently seen is forgotten first. */
const MAX_REMEMBERED = 10_000;

export class SeenQuotas {
  private readonly quotas = new Map<string, Quota>();

  /** `quota` was given for a mutation of `storeId`: it holds the store's usage group. */
  note(storeId: string, quota: Quota | undefined): void {
    if (quota === undefined) return;
    const group = usageGroupOf(storeId).id;
    // Re-inserted, so the map's order is least recently seen first.
    this.quotas.delete(group);
    this.quotas.set(group, quota);
    if (this.quotas.size > MAX_REMEMBERED) this.quotas.delete(this.quotas.keys().next().value!);
  }

  /** Up to `limit` groups (by id: a store id, or a VSS user's prefix `vss:<user>:`) with their quotas, most recently seen last. */
  known(limit: number): Array<[string, Quota]> {
    return [...this.quotas].slice(-limit);
  }
}
