//! A hybrid logical clock for mutation versions: `ms_since_epoch << 20 | counter` (contract §3).

import { invalidArgument } from "../store/errors.js";
import { DEFAULT_MAX_VERSION_SKEW_MS, MAX_VERSION } from "../limits.js";

const COUNTER_BITS = 20n;

export { DEFAULT_MAX_VERSION_SKEW_MS };

/**
 * Proposes strictly increasing versions from the wall clock: the wall clock dominates while it
 * moves forward, and the logical part carries on when it stands still or steps back. A proposal is
 * only that: the backend stores a plain mutation at `max(proposal, stored version + 1)` (contract
 * §3.2), so it applies whatever this clock, another instance's clock or a caller's version says.
 *
 * The clock observes nothing but its own proposals: observing callers' versions (or versions a
 * backend moved past them) would let one tenant's far-ahead versions move every tenant's
 * proposals, and a tenant's own wall-clock versions would then lose to them.
 */
export class HybridClock {
  private last = 0n;

  constructor(
    private readonly now: () => number = Date.now,
    /** Caller versions further ahead than this (in ms of the version's time part) are refused. */
    readonly maxSkewMs: number = DEFAULT_MAX_VERSION_SKEW_MS,
  ) {}

  /** A version above every one proposed so far. */
  next(): bigint {
    const wall = BigInt(this.now()) << COUNTER_BITS;
    this.last = wall > this.last ? wall : this.last + 1n;
    return this.last;
  }

  /**
   * Accepts a caller's version unless it is too far ahead of the wall clock: one client must not
   * put a key beyond the reach of its own later wall-clock versions. The limit is the same for
   * every store and moves only with time.
   */
  admit(version: bigint, what: string): void {
    const limit = (BigInt(this.now() + this.maxSkewMs) << COUNTER_BITS) | ((1n << COUNTER_BITS) - 1n);
    if (version > limit && version <= MAX_VERSION) {
      throw invalidArgument(
        `Failed to ${what}: version ${version} is more than ${this.maxSkewMs} ms ahead of the server's clock ` +
          `(highest accepted now: ${limit}; versions are ms_since_epoch << 20 | counter)`,
      );
    }
  }
}
