// Shared helpers for the tier tests in this folder: names, bytes, error capture, page walks and
// a TierStore whose tiers record every call.

import { MemoryStore } from "../../src/store/memory.js";
import type { KeyRef, NamespaceRef } from "../../src/store/types.js";
import type { RetryPolicy } from "../../src/tier/retry.js";
import { TierStore, type TierStoreOptions } from "../../src/tier/tier-store.js";
import { RecordingStore } from "../support/fault-stores.js";

export const ROOT: NamespaceRef = { primaryNamespace: "", secondaryNamespace: "" };

export const ns = (primaryNamespace: string, secondaryNamespace = ""): NamespaceRef => ({
  primaryNamespace,
  secondaryNamespace,
});

export const at = (namespace: NamespaceRef, key: string): KeyRef => ({ ...namespace, key });

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

export const text = (value: Uint8Array): string => new TextDecoder().decode(value);

/** Retries that finish in a few ms, so failure paths stay fast. */
export const FAST_RETRY: RetryPolicy = { initialDelayMs: 1, maxDelayMs: 5, maxAttempts: 3 };

export { errorOf, walkPages } from "../support/store-assertions.js";

export const sorted = (keys: readonly string[]): string[] => [...keys].sort();

/** A TierStore over MemoryStores, each wrapped in a RecordingStore (no ephemeral tier if `ephemeral: false`). */
export interface RecordedTiers {
  readonly tier: TierStore;
  readonly primary: RecordingStore;
  readonly backup: RecordingStore;
  readonly ephemeral: RecordingStore | undefined;
}

export function recordedTiers(
  options: { ephemeral?: boolean } & Omit<TierStoreOptions, "primary" | "backup" | "ephemeral"> = {},
): RecordedTiers {
  const { ephemeral: withEphemeral = true, ...rest } = options;
  const primary = new RecordingStore(new MemoryStore());
  const backup = new RecordingStore(new MemoryStore());
  const ephemeral = withEphemeral ? new RecordingStore(new MemoryStore()) : undefined;
  const tier = new TierStore({ ...rest, primary, backup, ephemeral });
  return { tier, primary, backup, ephemeral };
}
