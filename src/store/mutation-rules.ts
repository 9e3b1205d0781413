//! The rules every backend applies to one key's stored state (contract §3): when a versioned
//! mutation is stale, which version and revision a write stores, and whether a Txn check holds.
//! Backends that decide inside their own database (PostgreSQL) express the same rules in SQL and
//! pass the same conformance suite.

import type { MutationOptions, TxnCheck } from "./types.js";

/** What a backend stores about a key besides its value. */
export interface StoredState {
  readonly version: bigint;
  readonly revision: bigint;
}

/**
 * A versioned mutation at or below the stored version changes nothing; an unversioned one (and an
 * exact copy) always applies.
 */
export function isStale(stored: StoredState | undefined, options: Pick<MutationOptions, "version" | "exact">): boolean {
  return !options.exact && stored !== undefined && options.version !== undefined && options.version <= stored.version;
}

/**
 * The state a write stores: its own version (an unversioned write keeps the stored one), and the
 * revision given (mirroring, migration) or the next one: 1 on creation, +1 per write.
 */
export function stateAfterWrite(
  stored: StoredState | undefined,
  options: Pick<MutationOptions, "version" | "revision" | "exact">,
): StoredState {
  if (options.exact) return { version: options.version ?? 0n, revision: options.revision ?? 0n };
  return {
    version: options.version ?? stored?.version ?? 0n,
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
