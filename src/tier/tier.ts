//! One tier of the tiered store: a backend, its name, and the retry policy its calls get; plus
//! the errors a tier failure turns into for the caller.

import { StoreError } from "../store/errors.js";
import type { KVStore } from "../store/types.js";
import { inTierSpan } from "../tracing.js";
import { withRetry, type RetryObserver, type RetryPolicy } from "./retry.js";
import { tierDown, timedOut, type CircuitBreaker, type LatencyWindow } from "./tier-health.js";

export type TierName = "primary" | "backup" | "ephemeral";

/** The health a tier's calls are measured against (absent: no time limit, no breaker). */
export interface TierHealth {
  readonly latency: LatencyWindow;
  readonly breaker: CircuitBreaker;
}

export interface TierCallOptions {
  /** Run even while the tier is down (probes and the replay that brings it back up). */
  readonly force?: boolean;
  /** Added to the time limit (large values take longer to send). */
  readonly extraMs?: number;
  /**
   * The call copies state regardless of versions (a repair's exact copy or unversioned remove):
   * abandoned at the adaptive limit, it could still land after a newer mutation of the key and
   * undo it, so it is held only to the ceiling, like the primary.
   */
  readonly unversioned?: boolean;
}

export class Tier {
  constructor(
    readonly name: TierName,
    readonly store: KVStore,
    private readonly retry: RetryPolicy,
    private readonly onRetry: (tier: TierName, ...args: Parameters<RetryObserver>) => void,
    /** Told when a call fails for the tier's own reasons, after its retries (metrics). */
    private readonly onFailure: (tier: TierName, error: unknown) => void = () => {},
    readonly health?: TierHealth,
  ) {}

  /** True while the tier's breaker is open: calls fail at once (contract §4.12). */
  get down(): boolean {
    return this.health?.breaker.state === "down";
  }

  /**
   * Runs `operation` on this tier's store with its retry policy, never past `deadline`. Each
   * attempt gets the tier's time limit (`operation` is told the attempt's deadline, to pass to
   * the store); a tier that is down fails the call at once, without retries.
   */
  async call<T>(
    operation: (store: KVStore, deadline: number | undefined) => Promise<T>,
    deadline: number | undefined,
    options: TierCallOptions = {},
  ): Promise<T> {
    try {
      return await inTierSpan(this.name, () =>
        withRetry(
          () => this.attempt(operation, deadline, options),
          this.retry,
          deadline,
          (...args) => this.onRetry(this.name, ...args),
          () => this.down && options.force !== true,
        ),
      );
    } catch (error) {
      if (isTierFault(error)) this.onFailure(this.name, error);
      throw error;
    }
  }

  private async attempt<T>(
    operation: (store: KVStore, deadline: number | undefined) => Promise<T>,
    deadline: number | undefined,
    options: TierCallOptions,
  ): Promise<T> {
    const health = this.health;
    if (health === undefined) return operation(this.store, deadline);
    if (health.breaker.state === "down" && options.force !== true) throw tierDown(health.breaker.lastCause);
    // The primary decides every mutation, and no other tier can take its place: a slow answer of
    // its own (a large commit, an fsync stall) is waited for up to the ceiling, never abandoned as
    // if it had failed. Only the other tiers are held to what they normally take.
    const limitMs =
      this.name === "primary" || options.unversioned === true ? health.latency.ceilingMs : health.latency.limitMs + (options.extraMs ?? 0);
    const started = performance.now();
    const limitDeadline = Date.now() + limitMs;
    const callerBinds = deadline !== undefined && deadline <= limitDeadline;
    let timer: NodeJS.Timeout | undefined;
    try {
      const running = operation(this.store, callerBinds ? deadline : limitDeadline);
      // A call past its limit is abandoned: its answer, should one come, is dropped.
      running.catch(() => {});
      const result = await Promise.race([
        running,
        // The rejection waits one more turn of the event loop: a commit that blocked the loop
        // past the limit (a large SQLite transaction) gets to deliver its answer first.
        new Promise<never>((_, reject) => (timer = setTimeout(() => setImmediate(() => reject(timedOut(limitMs))), limitMs))),
      ]);
      health.latency.record(performance.now() - started);
      health.breaker.succeeded();
      return result;
    } catch (error) {
      const { code } = StoreError.from(error);
      // The caller's own deadline or cancellation says nothing about the tier.
      const callersOwn = code === "cancelled" || (code === "deadline-exceeded" && callerBinds);
      if (isTierFault(error) && !callersOwn) health.breaker.failed(error);
      else if (!isTierFault(error)) health.breaker.succeeded();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Codes that make a tier's failure the tier's own trouble (addresses, TLS), not an answer about the
 * caller's request. Not rpc/status.ts's TRANSPORT_CODES (the codes whose client message gets the
 * peer's address): this set also holds `cancelled`, which the client never produces (it maps a
 * CANCELLED call to `unavailable`) but a tier's store may raise itself; kept as it was.
 */
const TIER_FAULT_CODES: ReadonlySet<string> = new Set(["unavailable", "deadline-exceeded", "cancelled", "internal"]);

/** How a tier's transport failure reads, by code (any other: "is unavailable"). */
const TRANSPORT_FAILURES: Readonly<Record<string, string>> = { internal: "failed", "deadline-exceeded": "did not answer in time" };

/**
 * Codes with which a tier (a chained tierkv) refuses this server itself, its `token_file=` or
 * client certificate: the caller's own credentials were fine, and only an operator can fix it.
 */
const REFUSED_CODES: ReadonlySet<string> = new Set(["unauthenticated", "permission-denied"]);

/** True when `error` is the tier's own trouble (transport, refused credentials), not an answer about the request. */
export function isTierFault(error: unknown): boolean {
  const { code } = StoreError.from(error);
  return TIER_FAULT_CODES.has(code) || REFUSED_CODES.has(code);
}

/**
 * What the caller learns of a tier's failure: which tier, whether it may retry, and whether
 * another tier already applied the mutation. Transport details (peer addresses, TLS errors) stay
 * in `cause`, for the log only.
 */
export function tierFailure(tier: TierName, error: unknown, appliedIn: readonly TierName[] = []): StoreError {
  const cause = StoreError.from(error);
  if (!isTierFault(cause)) return cause;
  const refused = REFUSED_CODES.has(cause.code);
  const applied =
    appliedIn.length === 0
      ? "nothing was acknowledged"
      : `the ${appliedIn.join(" and ")} tier applied it; retrying with the same version is safe`;
  const what = refused ? `refused this server's credentials (${cause.code})` : (TRANSPORT_FAILURES[cause.code] ?? "is unavailable");
  // Every tier failure is worth a retry by the caller: the mutation's version makes it idempotent.
  const code = cause.code === "internal" ? "internal" : "unavailable";
  return new StoreError(code, `the ${tier} tier ${what}; ${applied}`, { cause });
}
