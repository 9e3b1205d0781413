//! A hybrid logical clock for mutation versions: `ms_since_epoch << 20 | counter` (contract §3).

import { invalidArgument } from "../store/errors.js";
import { MAX_VERSION } from "../store/validate.js";

const COUNTER_BITS = 20n;

/** How far ahead of the clock a caller's version may be, by default: 10 minutes. */
export const DEFAULT_MAX_VERSION_SKEW_MS = 10 * 60 * 1000;

/**
 * Issues strictly increasing versions above every version it has seen: the wall clock dominates
 * while it moves forward, and the logical part carries on when it stands still or steps back
 * (across a restart, the clock is seeded from the highest version the primary stores). So a
 * server-assigned version is never stale, whatever the wall clock does.
 */
export class HybridClock {
  private last = 0n;

  constructor(
    private readonly now: () => number = Date.now,
    /** Caller versions further ahead than this (in ms of the version's time part) are refused. */
    readonly maxSkewMs: number = DEFAULT_MAX_VERSION_SKEW_MS,
  ) {}

  /** A version above every one issued or observed so far. */
  next(): bigint {
    const wall = BigInt(this.now()) << COUNTER_BITS;
    this.last = wall > this.last ? wall : this.last + 1n;
    return this.last;
  }

  /** Moves the clock past `version` (a stored, received or applied one). */
  observe(version: bigint): void {
    if (version > this.last) this.last = version;
  }

  /**
   * Accepts a caller's version (and observes it) unless it is too far ahead: one client must not
   * be able to put a key beyond the reach of every later server-assigned version.
   */
  admit(version: bigint, what: string): void {
    const horizon = (BigInt(this.now() + this.maxSkewMs) << COUNTER_BITS) | ((1n << COUNTER_BITS) - 1n);
    const limit = this.last > horizon ? this.last : horizon;
    if (version > limit && version <= MAX_VERSION) {
      throw invalidArgument(
        `Failed to ${what}: version ${version} is more than ${this.maxSkewMs} ms ahead of the server's clock ` +
          `(highest accepted now: ${limit}; versions are ms_since_epoch << 20 | counter)`,
      );
    }
    this.observe(version);
  }
}
