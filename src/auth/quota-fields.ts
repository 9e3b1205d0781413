//! The quota an entry of the identities file or of the VSS key allow-list may carry: `maxKeys`,
//! `maxBytes`, `maxStores` (non-negative whole numbers; 0 there is a limit of zero).

import type { Quota } from "../store/types.js";

export const QUOTA_FIELDS = ["maxKeys", "maxBytes", "maxStores"] as const;

export type QuotaFields = { readonly [K in (typeof QUOTA_FIELDS)[number]]?: number };

/** Throws an Error naming the entry (`where`) when a quota field of `record` is not a non-negative whole number. */
export function checkQuotaFields(record: Readonly<Record<string, unknown>>, where: string): void {
  for (const field of QUOTA_FIELDS) {
    const value = record[field];
    if (value !== undefined && (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0)) {
      throw new Error(`${where}: "${field}" must be a non-negative whole number`);
    }
  }
}

/** The entry's own quota: the fields it sets, or undefined when it sets none (the default quota then applies). */
export function quotaOf(entry: QuotaFields): Quota | undefined {
  const quota: QuotaFields = Object.fromEntries(QUOTA_FIELDS.flatMap((field) => (entry[field] === undefined ? [] : [[field, entry[field]]])));
  return Object.keys(quota).length === 0 ? undefined : quota;
}

