//! What a failed backup write means for the caller (contract §4): the two backup policies.

import { StoreError } from "../store/errors.js";

export type BackupPolicyName = "required" | "degraded";

export interface BackupPolicy {
  readonly name: BackupPolicyName;
  /**
   * True when a mutation the primary applied may be acknowledged although the backup failed with
   * `error`: the backup then owes it (recorded in the primary's ledger) until a replay repairs it.
   */
  acknowledgesWithout(error: unknown): boolean;
}

/** `required`: a durable mutation fails unless the backup has it too. */
const REQUIRED: BackupPolicy = { name: "required", acknowledgesWithout: () => false };

/**
 * `degraded`: only an unreachable backup degrades (after retries); a backup that refuses the
 * request still fails it.
 */
const DEGRADED: BackupPolicy = {
  name: "degraded",
  acknowledgesWithout(error) {
    const code = StoreError.from(error).code;
    return code === "unavailable" || code === "deadline-exceeded";
  },
};

export function backupPolicy(name: BackupPolicyName): BackupPolicy {
  return name === "degraded" ? DEGRADED : REQUIRED;
}
