//! The rules every backend applies to one key's stored state (contract §3, §6.3): when a versioned
//! mutation is stale, which version and revision a write stores, whether a Txn check holds, and
//! whether a mutation fits its tenant's quota (held by its store's usage group).
//! Backends that decide inside their own database (PostgreSQL) express the same rules in SQL and
//! pass the same conformance suite.

import { quotaExceeded } from "./errors.js";
import type { GroupUsage, MutationOptions, Quota, StoreUsage, TxnCheck } from "./types.js";
import type { UsageGroup } from "./usage-group.js";

/** What a backend stores about a key besides its value. */
export interface StoredState {
  readonly version: bigint;
  readonly revision: bigint;
}

type VersionOptions = Pick<MutationOptions, "version" | "plain" | "exact">;

/**
 * A versioned mutation at or below the stored version changes nothing; an unversioned one, a
 * plain one and an exact copy always apply.
 */
export function isStale(stored: StoredState | undefined, options: VersionOptions): boolean {
  return !options.exact && !options.plain && stored !== undefined && options.version !== undefined && options.version <= stored.version;
}

/** The version a mutation is applied at: a plain one's proposal moves past what the key holds. */
export function appliedVersion(stored: StoredState | undefined, options: VersionOptions): bigint | undefined {
  if (options.plain && !options.exact && options.version !== undefined && stored !== undefined && stored.version >= options.version) {
    return stored.version + 1n;
  }
  return options.version;
}

/**
 * The state a write stores: its own version (an unversioned write keeps the stored one), and the
 * revision given (mirroring, migration) or the next one: 1 on creation, +1 per write.
 */
export function stateAfterWrite(stored: StoredState | undefined, options: VersionOptions & Pick<MutationOptions, "revision">): StoredState {
  if (options.exact) return { version: options.version ?? 0n, revision: options.revision ?? 0n };
  return {
    version: appliedVersion(stored, options) ?? stored?.version ?? 0n,
    revision: options.revision ?? (stored === undefined ? 1n : stored.revision + 1n),
  };
}

export function checkHolds(check: TxnCheck, stored: StoredState | undefined): boolean {
  if (check.expect === "absent") return stored === undefined;
  if (check.expect === "present") return stored !== undefined;
  return stored !== undefined && stored.revision === check.expect;
}

/** The index of the first check that does not hold, or -1 when all do. */
export function firstFailedCheck(checks: readonly TxnCheck[], stateOf: (check: TxnCheck) => StoredState | undefined): number {
  return checks.findIndex((check) => !checkHolds(check, stateOf(check)));
}

/** How a mutation changes its store's usage: the stored size (undefined: absent) and the new one (undefined: removed). */
export function usageChange(storedBytes: number | undefined, newBytes: number | undefined): StoreUsage {
  return {
    keys: (newBytes === undefined ? 0 : 1) - (storedBytes === undefined ? 0 : 1),
    bytes: (newBytes ?? 0) - (storedBytes ?? 0),
  };
}

/**
 * Throws `quotaExceeded` when `change` would take the usage of `group` (its stores together, see
 * usage-group.ts) past `quota`. Only growth is refused: a mutation that keeps or lowers a
 * dimension passes even in a group already over its limit (a quota lowered later, or usage written
 * before it existed), so a tenant can always clean up.
 */
export function checkQuota(group: UsageGroup, usage: GroupUsage, change: GroupUsage, quota: Quota | undefined): void {
  if (quota === undefined) return;
  const [holds, its] = group.single ? [`${group.name} holds`, "its"] : [`${group.name} hold`, "their"];
  if (quota.maxKeys !== undefined && change.keys > 0 && usage.keys + change.keys > quota.maxKeys) {
    throw quotaExceeded(`${holds} ${usage.keys} keys; this would make ${usage.keys + change.keys} and ${its} quota is ${quota.maxKeys} keys`);
  }
  if (quota.maxBytes !== undefined && change.bytes > 0 && usage.bytes + change.bytes > quota.maxBytes) {
    throw quotaExceeded(`${holds} ${usage.bytes} bytes of values; this needs ${change.bytes} more and ${its} quota is ${quota.maxBytes} bytes`);
  }
  if (quota.maxStores !== undefined && change.stores > 0 && usage.stores + change.stores > quota.maxStores) {
    throw quotaExceeded(
      `${holds} keys in ${usage.stores} store ids; this would make ${usage.stores + change.stores} and ${its} quota is ${quota.maxStores} store ids`,
    );
  }
}
