//! How a tier is doing (contract §4.12): the time limit of its calls, learnt from what they
//! normally take, and its circuit breaker (up / down), with the counters metrics and
//! `backup-status` report.

import { StoreError } from "../store/errors.js";

export interface TierHealthPolicy {
  /** A call's time limit is this multiple of the tier's recent p99 … */
  readonly timeLimitP99Multiple: number;
  /** … but never below this (ms) … */
  readonly timeLimitMinMs: number;
  /** … nor above this (ms); also the limit before enough calls were seen. */
  readonly timeLimitMaxMs: number;
  /** The breaker opens after this many tier failures in a row … */
  readonly breakerFailures: number;
  /** … or when failures have gone on this long (ms) without a success in between. */
  readonly breakerFailureMs: number;
  /** First delay (ms) between probes of a tier that is down; doubles up to `probeMaxDelayMs`. */
  readonly probeInitialDelayMs: number;
  readonly probeMaxDelayMs: number;
}

/** Successful calls remembered per tier for its p99. */
const WINDOW = 512;
/** Calls seen before the p99 is trusted; until then the limit is the ceiling. */
const MIN_SAMPLES = 32;
/** The p99 is computed again after this many new samples (sorting on every call would cost). */
const RECOMPUTE_EVERY = 32;

/** Durations of a tier's recent successful calls, and the time limit they give. */
export class LatencyWindow {
  private readonly samples = new Float64Array(WINDOW);
  private count = 0;
  private sinceRecompute = 0;
  private p99Ms: number | undefined;

  constructor(private readonly policy: TierHealthPolicy) {}

  record(ms: number): void {
    this.samples[this.count % WINDOW] = ms;
    this.count++;
    if (++this.sinceRecompute >= RECOMPUTE_EVERY && this.count >= MIN_SAMPLES) {
      this.sinceRecompute = 0;
      // A typed array sorts numerically in native code: no comparator calls, no boxed copy.
      const sorted = this.samples.slice(0, Math.min(this.count, WINDOW)).sort();
      this.p99Ms = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;
    }
  }

  /** The recent p99 in ms (undefined before enough calls). */
  get p99(): number | undefined {
    return this.p99Ms;
  }

  /** The longest any attempt may take, in ms (the primary's only limit, see `Tier`). */
  get ceilingMs(): number {
    return this.policy.timeLimitMaxMs;
  }

  /** How long one attempt of a call may take, in ms. */
  get limitMs(): number {
    const { timeLimitP99Multiple, timeLimitMinMs, timeLimitMaxMs } = this.policy;
    if (this.p99Ms === undefined) return timeLimitMaxMs;
    return Math.min(timeLimitMaxMs, Math.max(timeLimitMinMs, Math.ceil(this.p99Ms * timeLimitP99Multiple)));
  }
}

export type BreakerState = "up" | "down";

export interface BreakerTransition {
  readonly to: BreakerState;
  /** Why: the failure that opened it, or "a probe answered". */
  readonly cause: string;
  /** For `up`: how long the tier was down, in ms. */
  readonly downMs?: number;
}

/**
 * A circuit breaker: `up` until `breakerFailures` failures in a row (or failures for
 * `breakerFailureMs` without a success), then `down` until `close()` (a probe answered).
 */
export class CircuitBreaker {
  private current: BreakerState = "up";
  private failuresInRow = 0;
  private firstFailureAt = 0;
  private downSince = 0;
  private downTotalMs = 0;
  private transitionCount = 0;
  /** The last failure's message (for the log; may name addresses). */
  lastCause = "";

  constructor(
    private readonly policy: TierHealthPolicy,
    private readonly onTransition: (transition: BreakerTransition) => void,
    private readonly now: () => number = Date.now,
  ) {}

  get state(): BreakerState {
    return this.current;
  }

  /** Transitions so far (up → down and down → up). */
  get transitions(): number {
    return this.transitionCount;
  }

  /** Time spent down, the current spell included, in ms. */
  get downMs(): number {
    return this.downTotalMs + (this.current === "down" ? this.now() - this.downSince : 0);
  }

  succeeded(): void {
    this.failuresInRow = 0;
  }

  failed(error: unknown): void {
    this.lastCause = causeOf(error);
    if (this.current === "down") return;
    const now = this.now();
    if (this.failuresInRow++ === 0) this.firstFailureAt = now;
    if (this.failuresInRow >= this.policy.breakerFailures || now - this.firstFailureAt >= this.policy.breakerFailureMs) {
      this.open(this.lastCause);
    }
  }

  /** Marks the tier down (a failed start-up check, or too many failures). */
  open(cause: string): void {
    if (this.current === "down") return;
    this.current = "down";
    this.downSince = this.now();
    this.transitionCount++;
    this.onTransition({ to: "down", cause });
  }

  /** Marks the tier up again (a probe answered and its debt was replayed). */
  close(cause: string): void {
    if (this.current === "up") return;
    const downMs = this.now() - this.downSince;
    this.downTotalMs += downMs;
    this.current = "up";
    this.failuresInRow = 0;
    this.transitionCount++;
    this.onTransition({ to: "up", cause, downMs });
  }
}

/** The real cause of a tier failure, for the log: the innermost message (TLS, DNS, refused…). */
export function causeOf(error: unknown): string {
  const messages: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    const message = current instanceof Error ? current.message : String(current);
    if (!messages.includes(message)) messages.push(message);
    current = current instanceof Error ? (current as Error & { cause?: unknown }).cause : undefined;
  }
  return messages.join(": ");
}

/** The error of a call that did not answer within its tier's time limit. */
export function timedOut(limitMs: number): StoreError {
  return new StoreError("deadline-exceeded", `no answer within the tier's time limit (${limitMs} ms)`);
}

/** The error of a call skipped because its tier is down. */
export function tierDown(cause: string): StoreError {
  return new StoreError("unavailable", `the tier is down (circuit open): ${cause}`);
}
