//! A hybrid logical clock for mutation versions: `ms_since_epoch << 20 | counter` (SPEC §3).

const COUNTER_BITS = 20n;

/**
 * Issues strictly increasing versions that also increase across restarts (the wall clock
 * dominates), so server-assigned and caller-assigned versions of the same form compare sensibly.
 */
export class HybridClock {
  private last = 0n;

  constructor(private readonly now: () => number = Date.now) {}

  next(): bigint {
    const wall = BigInt(this.now()) << COUNTER_BITS;
    this.last = wall > this.last ? wall : this.last + 1n;
    return this.last;
  }
}
