//! The quotas the tiered store has seen, per store (contract §6.3). Backends decide quotas in the
//! transaction that applies each mutation, against a usage record they keep; this only remembers
//! which stores have a quota, so the per-store metrics can show usage beside it.

import type { Quota } from "../store/types.js";

/** Most stores remembered; the least recently seen is forgotten first. */
const MAX_REMEMBERED = 10_000;

export class SeenQuotas {
  private readonly quotas = new Map<string, Quota>();

  note(storeId: string, quota: Quota | undefined): void {
    if (quota === undefined) return;
    // Re-inserted, so the map's order is least recently seen first.
    this.quotas.delete(storeId);
    this.quotas.set(storeId, quota);
    if (this.quotas.size > MAX_REMEMBERED) this.quotas.delete(this.quotas.keys().next().value!);
  }

  /** Up to `limit` stores with their quotas, most recently seen last. */
  known(limit: number): Array<[string, Quota]> {
    return [...this.quotas].slice(-limit);
  }
}
