//! Every limit on the work one request may cause, and the sizes derived from them (etcd's
//! `--max-request-bytes` / `--max-txn-ops` idea). Defaults live here; `serve` turns the ones an
//! operator may want to change into settings. The contract (docs/contract.md §7) lists them all.

/** Default and largest page size of `ListPage` and `ListAllKeys`. */
export const DEFAULT_PAGE_SIZE = 1000;
export const MAX_PAGE_SIZE = 1000;

/** Resolves a requested page size to the one a backend uses. */
export function effectivePageSize(requested: number | undefined): number {
  if (requested === undefined || requested <= 0) return DEFAULT_PAGE_SIZE;
  return Math.min(requested, MAX_PAGE_SIZE);
}

/**
 * Room a message needs besides its values: names, versions and protobuf framing. A mutation's
 * names are at most 3 × 120 characters (≤ 3 × 480 bytes of UTF-8), plus store id and varints.
 */
export const PER_MUTATION_OVERHEAD_BYTES = 2 * 1024;
/** Room for one message's fixed framing on top of its mutations. */
export const MESSAGE_OVERHEAD_BYTES = 64 * 1024;

/** The limits an operator can set (see `serve`'s settings). */
export interface Limits {
  /** Largest value a write accepts. */
  readonly maxValueBytes: number;
  /** Most mutations (or operations + checks of a Txn) one request may carry. */
  readonly maxBatchItems: number;
  /** Largest sum of value bytes one batch request may carry. */
  readonly maxBatchBytes: number;
  /** Most keys an unpaged `List` returns; a larger namespace is refused, pointing to `ListPage`. */
  readonly maxListKeys: number;
  /** Most concurrent streams (calls) per HTTP/2 connection. */
  readonly maxConcurrentStreams: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxValueBytes: 64 * 1024 * 1024,
  maxBatchItems: 1000,
  maxBatchBytes: 64 * 1024 * 1024,
  maxListKeys: 10_000,
  maxConcurrentStreams: 256,
};

/** The largest gRPC message the server accepts and sends under `limits`. */
export function messageLimitBytes(limits: Limits): number {
  const batch = limits.maxBatchBytes + limits.maxBatchItems * PER_MUTATION_OVERHEAD_BYTES;
  return Math.max(limits.maxValueBytes, batch) + MESSAGE_OVERHEAD_BYTES;
}

/**
 * Group commit: the most mutations and value bytes one SQLite transaction takes, so one commit
 * never holds the event loop for more than a few milliseconds; the rest wait for the next one.
 */
export const GROUP_COMMIT_MAX_MUTATIONS = 512;
export const GROUP_COMMIT_MAX_BYTES = 8 * 1024 * 1024;

/** SQLite's busy timeout: short, because a wait blocks the whole event loop. */
export const SQLITE_BUSY_TIMEOUT_MS = 100;

/** How long in-flight calls get to finish after SIGINT/SIGTERM before they are cancelled. */
export const SHUTDOWN_GRACE_MS = 30_000;
