//! Typed store errors: every failure a store, tier or client reports carries one of these codes.

/** What went wrong, independent of the transport. Mapped to gRPC status in `src/rpc/status.ts`. */
export type StoreErrorCode =
  | "invalid-argument"
  | "not-found"
  | "resource-exhausted"
  | "failed-precondition"
  | "unavailable"
  | "deadline-exceeded"
  | "cancelled"
  | "unauthenticated"
  | "permission-denied"
  | "internal"
  /** A watch start the change log no longer (or does not yet) holds (etcd's "compacted"). */
  | "out-of-range";

/**
 * A finer cause within a code, for surfaces whose wire tables tell them apart: `quota` is a
 * tenant's own limit (contract §6.3), unlike a full disk, which shares `resource-exhausted`;
 * `read-only` is a write to a follower (contract §9.5), which no retry will get through.
 */
export type StoreErrorReason = "quota" | "stalled" | "read-only";

/** Codes worth retrying: the same request may succeed later without change. */
const RETRYABLE: ReadonlySet<StoreErrorCode> = new Set(["unavailable"]);

/** An error with a code a caller can act on. The message is safe to show to a remote caller. */
export class StoreError extends Error {
  override readonly name = "StoreError";
  readonly reason: StoreErrorReason | undefined;

  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown; reason?: StoreErrorReason },
  ) {
    super(message, options);
    this.reason = options?.reason;
  }

  /** True when retrying the same request may succeed (the tier wrapper's retry loop asks this). */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }

  /**
   * Wraps anything thrown into a StoreError. Unknown errors become `internal` with a generic
   * message, so a bug's details (paths, stack traces) never travel over the wire; the original
   * stays in `cause` for the server log.
   */
  static from(error: unknown): StoreError {
    if (error instanceof StoreError) return error;
    return new StoreError("internal", "internal error", { cause: error });
  }
}

export function notFound(operation: string, path: string): StoreError {
  return new StoreError("not-found", `Failed to ${operation} ${path}: no such key`);
}

export function invalidArgument(message: string): StoreError {
  return new StoreError("invalid-argument", message);
}

/** A tenant's quota would be exceeded: nothing changed (contract §6.3). */
export function quotaExceeded(message: string): StoreError {
  return new StoreError("resource-exhausted", message, { reason: "quota" });
}

/**
 * A server stream whose peer took no message for `maxStallMs` (contract §7): thrown into the
 * stream's handler, which may add where to resume before it ends the call.
 */
export function streamStalled(maxStallMs: number): StoreError {
  return new StoreError("resource-exhausted", `the peer took no message for ${maxStallMs} ms`, { reason: "stalled" });
}
