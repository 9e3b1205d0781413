//! The server-side versioned lock (SPEC §3): per key, mutations run one at a time in arrival
//! order, and one whose version is not above the highest applied is acknowledged unapplied.

import { StoreError } from "../store/errors.js";

const MAX_TIMER_MS = 2 ** 31 - 1;

/** How a mutation ended when it did not throw. */
export type MutationOutcome = "applied" | "stale";

interface KeyState {
  /** Highest version applied while this entry lived (0 = none yet: the backends' stored version rules). */
  applied: bigint;
  /** Mutations holding or waiting for this key; the entry is dropped at 0. */
  holders: number;
  /** Settles when the last queued mutation of this key is done. */
  tail: Promise<void>;
}

/**
 * Different keys never wait for each other. A failed mutation does not raise the applied version
 * (the caller got an error and may retry). Entries exist only while a mutation holds them, so
 * idle keys cost nothing; across idle periods and restarts, the version each backend stores with
 * the value keeps stale writes out (backends apply a versioned mutation only above it).
 */
export class VersionedLock {
  private readonly keys = new Map<string, KeyState>();

  /** Keys with a mutation in flight (for tests and metrics: idle keys leave nothing behind). */
  get size(): number {
    return this.keys.size;
  }

  /**
   * Runs `mutate` for `key` once every earlier mutation of that key is done, unless `version` is
   * stale by then. Waiting ends at `deadline` (ms since epoch) with `deadline-exceeded`; the
   * mutation is then skipped, never applied later.
   */
  run(key: string, version: bigint, mutate: () => Promise<void>, deadline?: number): Promise<MutationOutcome> {
    return this.inTurn(
      key,
      async (entry) => {
        if (version <= entry.applied) return "stale";
        await mutate();
        entry.applied = version;
        return "applied";
      },
      deadline,
    );
  }

  /**
   * Runs `task` alone on `key` (in turn with its mutations) without touching the applied
   * version: for repairs that copy a key's current state between tiers.
   */
  exclusive<T>(key: string, task: () => Promise<T>): Promise<T> {
    return this.inTurn(key, task);
  }

  private async inTurn<T>(key: string, task: (entry: KeyState) => Promise<T>, deadline?: number): Promise<T> {
    let state = this.keys.get(key);
    if (state === undefined) {
      state = { applied: 0n, holders: 0, tail: Promise.resolve() };
      this.keys.set(key, state);
    }
    const entry = state;
    entry.holders++;
    const previous = entry.tail;
    let release!: () => void;
    entry.tail = new Promise<void>((resolve) => (release = resolve));
    let abandoned = false;

    const turn = async (): Promise<T> => {
      try {
        await previous;
        if (abandoned) throw new StoreError("deadline-exceeded", `deadline passed while waiting to mutate ${key}`);
        return await task(entry);
      } finally {
        release();
        if (--entry.holders === 0) this.keys.delete(key);
      }
    };

    // The deadline only matters while waiting: with nobody ahead there is no wait, and no timer
    // (the common case, kept cheap). Node fires timers longer than 2^31-1 ms (~24.8 days) at
    // once; such a deadline cannot pass during a real wait either.
    const remaining = deadline === undefined ? Infinity : deadline - Date.now();
    if (entry.holders === 1 || remaining > MAX_TIMER_MS) return turn();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abandoned = true;
        reject(new StoreError("deadline-exceeded", `deadline passed while waiting to mutate ${key}`));
      }, Math.max(0, remaining));
    });
    const running = turn();
    // The turn still runs to completion (it releases the key); only the caller stops waiting.
    running.catch(() => {});
    try {
      return await Promise.race([running, expired]);
    } finally {
      clearTimeout(timer);
    }
  }
}
