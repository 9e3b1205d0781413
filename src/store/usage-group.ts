//! Usage groups (contract §6.3): the stores one quota holds together. A VSS user's stores
//! `vss:<user>:<store_id>` are one group, named by the prefix they share (`vss:<user>:`), so the
//! user's limits cover every store id it opens; any other store is a group of its own. Backends
//! keep usage per store; a group's is the sum of its stores' records, one range of the usage
//! table's key, read in the transaction that decides the quota.

import type { GroupUsage, StoreUsage } from "./types.js";
import { VSS_STORE_PREFIX } from "./names.js";

export interface UsageGroup {
  /** The store id of a group of one, else the prefix every store id of the group starts with. */
  readonly id: string;
  /** The group's store ids are exactly those in [from, to), in UTF-8 byte order and UTF-16 order alike. */
  readonly from: string;
  readonly to: string;
  /** A group of one store. */
  readonly single: boolean;
  /** How messages name the group: `store alice`, `the VSS stores of user alice`. */
  readonly name: string;
}

/** The prefix of a VSS user's store ids, which names the user's usage group. */
export function vssUserPrefix(user: string): string {
  return `${VSS_STORE_PREFIX}${encodeURIComponent(user)}:`;
}

/** The usage group `storeId` belongs to (a group's id belongs to that group). */
export function usageGroupOf(storeId: string): UsageGroup {
  // The user is URI-encoded, so its first `:` after the prefix ends it.
  const end = storeId.startsWith(VSS_STORE_PREFIX) ? storeId.indexOf(":", VSS_STORE_PREFIX.length) : -1;
  if (end < 0) {
    // Store ids hold no control characters, so only `s` sorts in [s, s\u0001) (PostgreSQL text
    // cannot hold the NUL of `s\u0000`).
    return { id: storeId, from: storeId, to: `${storeId}\u0001`, single: true, name: `store ${storeId}` };
  }
  const prefix = storeId.slice(0, end + 1);
  // Every id starting with `…:` sorts below `…;`, the prefix's successor (`:` is ASCII). Messages
  // show the user as encoded: it holds no control characters then.
  const user = prefix.slice(VSS_STORE_PREFIX.length, -1);
  return { id: prefix, from: prefix, to: `${prefix.slice(0, -1)};`, single: false, name: `the VSS stores of user ${user}` };
}

export function belongsTo(group: UsageGroup, storeId: string): boolean {
  return group.single ? storeId === group.id : storeId.startsWith(group.id);
}

/** Usage changes per store, gathered by usage group: a Txn's, or everything one SQLite commit applies. */
export class UsageChanges {
  private readonly groups = new Map<string, { readonly group: UsageGroup; readonly stores: Map<string, StoreUsage> }>();

  /** Adds `change` to what `storeId` changes. */
  add(storeId: string, change: StoreUsage): void {
    const group = usageGroupOf(storeId);
    let entry = this.groups.get(group.id);
    if (entry === undefined) {
      entry = { group, stores: new Map() };
      this.groups.set(group.id, entry);
    }
    const total = entry.stores.get(storeId);
    entry.stores.set(storeId, total === undefined ? change : { keys: total.keys + change.keys, bytes: total.bytes + change.bytes });
  }

  /** What `storeId` changes so far (nothing: undefined). */
  of(storeId: string): StoreUsage | undefined {
    return this.groups.get(usageGroupOf(storeId).id)?.stores.get(storeId);
  }

  /** Each group changed, with its stores' changes. */
  byGroup(): IterableIterator<{ readonly group: UsageGroup; readonly stores: ReadonlyMap<string, StoreUsage> }> {
    return this.groups.values();
  }

  /** The changes of `group`'s stores (none: empty). */
  inGroup(group: UsageGroup): ReadonlyMap<string, StoreUsage> {
    return this.groups.get(group.id)?.stores ?? new Map();
  }

  clear(): void {
    this.groups.clear();
  }
}

/**
 * A group's change from its stores' changes: keys and bytes summed, and the stores it fills (from
 * no keys to some) less those it empties. `keysBefore` is a store's keys before the change.
 */
export function groupChange(stores: ReadonlyMap<string, StoreUsage>, keysBefore: (storeId: string) => number): GroupUsage {
  let keys = 0;
  let bytes = 0;
  let filled = 0;
  for (const [storeId, change] of stores) {
    const before = keysBefore(storeId);
    keys += change.keys;
    bytes += change.bytes;
    filled += (before + change.keys > 0 ? 1 : 0) - (before > 0 ? 1 : 0);
  }
  return { keys, bytes, stores: filled };
}

/** Usage plus a change. */
export function plusUsage(usage: GroupUsage, change: GroupUsage): GroupUsage {
  return { keys: usage.keys + change.keys, bytes: usage.bytes + change.bytes, stores: usage.stores + change.stores };
}
