//! Retries with exponential backoff and full jitter, bounded by attempts and the caller's deadline.

import { DEFAULT_RETRY } from "../limits.js";
import { StoreError } from "../store/errors.js";

export interface RetryPolicy {
  /** Delay bound before the first retry, in ms; doubles per retry. */
  readonly initialDelayMs: number;
  /** Largest delay bound, in ms. */
  readonly maxDelayMs: number;
  /** Attempts in all, the first included (1 = no retries). */
  readonly maxAttempts: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = DEFAULT_RETRY;

/** No retries: for backends that retry by themselves, so retries never nest. */
export const NO_RETRY: RetryPolicy = { initialDelayMs: 0, maxDelayMs: 0, maxAttempts: 1 };

export type RetryObserver = (attempt: number, error: StoreError, delayMs: number) => void;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `operation` until it succeeds, fails with a non-retryable error, runs out of attempts, or
 * the next wait would end past `deadline`; then throws the last error. Only `StoreError`s that
 * say `retryable` are retried.
 */
export async function withRetry<T>(
  operation: () => Promise<T>,
  policy: RetryPolicy,
  deadline?: number,
  onRetry?: RetryObserver,
  /** Checked before each retry: true stops retrying (the tier was marked down meanwhile). */
  stop?: () => boolean,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (error) {
      const storeError = StoreError.from(error);
      if (!storeError.retryable || attempt >= policy.maxAttempts || stop?.() === true) throw storeError;
      // Full jitter: a random wait up to the exponential bound spreads retrying callers apart.
      const bound = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (attempt - 1));
      const delay = Math.random() * bound;
      if (deadline !== undefined && Date.now() + delay >= deadline) throw storeError;
      onRetry?.(attempt, storeError, delay);
      await sleep(delay);
    }
  }
}
