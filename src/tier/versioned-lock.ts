//! The server-side versioned lock (contract §3): per key, mutations run one at a time in arrival
//! order, and one whose version is not above the highest applied is acknowledged unapplied.

import { StoreError } from "../store/errors.js";
import type { MutationOutcome } from "../store/types.js";

const MAX_TIMER_MS = 2 ** 31 - 1;

/** What may end a wait for a key's turn (never a mutation that has started). */
export interface WaitLimits {
  /** ms since the epoch. */
  readonly deadline?: number;
  /** The caller went away. */
  readonly signal?: AbortSignal;
}

interface KeyState {
  /** Highest version applied while this entry lived (0 = none yet: the backends' stored version rules). */
  applied: bigint;
  /** Mutations holding or waiting for this key; the entry is dropped at 0. */
  holders: number;
  /** Settles when the last queued mutation of this key is done. */
  tail: Promise<void>;
}

/** Waits for `previous`, unless the deadline passes or the caller goes away first. */
function waitFor(previous: Promise<void>, key: string, limits: WaitLimits): Promise<void> {
  const remaining = limits.deadline === undefined ? Infinity : limits.deadline - Date.now();
  // Node fires timers longer than 2^31-1 ms (~24.8 days) at once; such a deadline cannot pass
  // during a real wait either.
  const timed = remaining <= MAX_TIMER_MS;
  if (!timed && limits.signal === undefined) return previous;
  return new Promise<void>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      limits.signal?.removeEventListener("abort", cancelled);
    };
    const cancelled = (): void => {
      done();
      reject(new StoreError("cancelled", `the call was cancelled while waiting for an earlier mutation of ${key}; it was not applied`));
    };
    const timer = timed
      ? setTimeout(() => {
          done();
          reject(new StoreError("deadline-exceeded", `the deadline passed while waiting for an earlier mutation of ${key}; it was not applied`));
        }, Math.max(0, remaining))
      : undefined;
    if (limits.signal?.aborted) return cancelled();
    limits.signal?.addEventListener("abort", cancelled, { once: true });
    void previous.then(() => {
      done();
      resolve();
    });
  });
}

/**
 * Different keys never wait for each other. A failed mutation does not raise the applied version
 * (the caller got an error and may retry). Entries exist only while a mutation holds them, so
 * idle keys cost nothing; across idle periods and restarts, the version each backend stores with
 * the value keeps stale writes out (backends apply a versioned mutation only above it).
 *
 * A deadline or a cancelled call ends only the *wait* for a key's turn: once a mutation runs, it
 * runs to its end and its caller learns what happened.
 */
export class VersionedLock {
  private readonly keys = new Map<string, KeyState>();

  /** Keys with a mutation in flight (for tests and metrics: idle keys leave nothing behind). */
  get size(): number {
    return this.keys.size;
  }

  /**
   * Runs `mutate` for `key` once every earlier mutation of that key is done, unless `version` is
   * stale by then. `mutate` reports whether the tiers applied it (they may know a newer version).
   * A `plain` mutation (no caller version) is never stale here: the backend orders it after
   * whatever the key holds, and `appliedAt` tells the version it got.
   */
  run(
    key: string,
    version: bigint,
    mutate: () => Promise<MutationOutcome>,
    limits: WaitLimits = {},
    plain: { readonly appliedAt: () => bigint } | undefined = undefined,
  ): Promise<MutationOutcome> {
    return this.inTurn(
      key,
      async (entry) => {
        if (plain === undefined && version <= entry.applied) return "stale";
        const outcome = await mutate();
        const applied = plain?.appliedAt() ?? version;
        if (outcome === "applied" && applied > entry.applied) entry.applied = applied;
        return outcome;
      },
      limits,
    );
  }

  /**
   * Runs `task` holding every key of `keys` (taken in sorted order, so two such tasks never
   * deadlock), without touching applied versions: for atomic batches and for repairs.
   */
  exclusive<T>(keys: readonly string[], task: () => Promise<T>, limits: WaitLimits = {}): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const hold = (i: number): Promise<T> => (i === sorted.length ? task() : this.inTurn(sorted[i]!, () => hold(i + 1), limits));
    return hold(0);
  }

  private async inTurn<T>(key: string, task: (entry: KeyState) => Promise<T>, limits: WaitLimits): Promise<T> {
    let entry = this.keys.get(key);
    if (entry === undefined) {
      entry = { applied: 0n, holders: 0, tail: Promise.resolve() };
      this.keys.set(key, entry);
    }
    const state = entry;
    state.holders++;
    const previous = state.tail;
    let release!: () => void;
    state.tail = new Promise<void>((resolve) => (release = resolve));
    const leave = (): void => {
      release();
      if (--state.holders === 0) this.keys.delete(key);
    };
    // With nobody ahead there is no wait and no timer (the common case, kept cheap).
    if (state.holders > 1) {
      try {
        await waitFor(previous, key, limits);
      } catch (error) {
        // This caller stops waiting, but the key is handed on only after those ahead are done.
        void previous.then(leave);
        throw error;
      }
    }
    try {
      return await task(state);
    } finally {
      leave();
    }
  }
}
