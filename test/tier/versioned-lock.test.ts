// The versioned lock and hybrid clock (contract §3): per-key ordering, stale and failed mutations, deadlines, no leaks.
import { describe, expect, it, vi } from "vitest";
import { StoreError } from "../../src/store/errors.js";
import { HybridClock } from "../../src/tier/hybrid-clock.js";
import { VersionedLock } from "../../src/tier/versioned-lock.js";
import { errorOf } from "./tier-test-helpers.js";

/** A promise the test settles by hand. */
interface Gate {
  readonly promise: Promise<void>;
  open(): void;
  fail(error: unknown): void;
}

function gate(): Gate {
  let open!: () => void;
  let fail!: (error: unknown) => void;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

/** Lets every queued promise continuation and timer-free callback run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Tracks whether a promise has settled, without awaiting it. */
function track<T>(promise: Promise<T>): { readonly done: boolean; readonly promise: Promise<T> } {
  const state = { done: false, promise };
  promise.then(
    () => (state.done = true),
    () => (state.done = true),
  );
  return state;
}

describe("VersionedLock", () => {
  it("does not make a mutation of one key wait for a blocked mutation of another", async () => {
    const lock = new VersionedLock();
    const blockA = gate();
    const a = track(lock.run("A", 1n, () => blockA.promise.then(() => "applied" as const)));
    const mutateB = vi.fn(async () => "applied" as const);
    await expect(lock.run("B", 1n, mutateB)).resolves.toBe("applied");
    expect(mutateB).toHaveBeenCalledOnce();
    expect(a.done).toBe(false);
    expect(lock.size).toBe(1);
    blockA.open();
    await expect(a.promise).resolves.toBe("applied");
    expect(lock.size).toBe(0);
  });

  it("runs mutations of one key one at a time, in arrival order", async () => {
    const lock = new VersionedLock();
    const gates = Array.from({ length: 5 }, () => gate());
    const events: string[] = [];
    let running = 0;
    let mostRunning = 0;
    const runs = gates.map((g, i) =>
      lock.run("K", BigInt(i + 1), async () => {
        mostRunning = Math.max(mostRunning, ++running);
        events.push(`start ${i}`);
        await g.promise;
        events.push(`end ${i}`);
        running--;
        return "applied" as const;
      }),
    );
    await settle();
    expect(events).toEqual(["start 0"]);
    // Opening the later gates first changes nothing: each mutation still waits its turn.
    for (const g of [...gates].reverse()) g.open();
    await expect(Promise.all(runs)).resolves.toEqual(Array(5).fill("applied"));
    expect(events).toEqual(gates.flatMap((_, i) => [`start ${i}`, `end ${i}`]));
    expect(mostRunning).toBe(1);
    expect(lock.size).toBe(0);
  });

  it("acknowledges a stale mutation without running it", async () => {
    const lock = new VersionedLock();
    const first = gate();
    const stale = vi.fn(async () => "applied" as const);
    const runs = [
      lock.run("K", 10n, () => first.promise.then(() => "applied" as const)),
      lock.run("K", 10n, stale),
      lock.run("K", 5n, stale),
      lock.run("K", 11n, async () => "applied" as const),
      lock.run("K", 11n, stale),
    ];
    first.open();
    await expect(Promise.all(runs)).resolves.toEqual(["applied", "stale", "stale", "applied", "stale"]);
    expect(stale).not.toHaveBeenCalled();
  });

  it("does not raise the applied version for a failed mutation", async () => {
    const lock = new VersionedLock();
    const failure = new StoreError("unavailable", "tier down");
    const applied = vi.fn(async () => "applied" as const);
    const runs = [
      lock.run("K", 10n, async () => "applied" as const),
      lock.run("K", 30n, async (): Promise<"applied"> => {
        throw failure;
      }),
      lock.run("K", 20n, applied),
      lock.run("K", 15n, applied),
    ];
    const [first, failed, lower, lowest] = await Promise.allSettled(runs);
    expect(first).toEqual({ status: "fulfilled", value: "applied" });
    expect(failed).toEqual({ status: "rejected", reason: failure });
    // 20 is below the failed 30 but above the applied 10; 15 is then below the applied 20.
    expect(lower).toEqual({ status: "fulfilled", value: "applied" });
    expect(lowest).toEqual({ status: "fulfilled", value: "stale" });
    expect(applied).toHaveBeenCalledOnce();
    expect(lock.size).toBe(0);
  });

  it("leaves no entries behind after 1,000 mutations over 100 keys", async () => {
    const lock = new VersionedLock();
    const runs: Promise<unknown>[] = [];
    for (let i = 0; i < 1000; i++) {
      const key = `key_${i % 100}`;
      // Some mutations fail and some are stale (every key's 5th arrives with an old version).
      const version = i % 500 >= 400 ? 1n : BigInt(i + 1);
      runs.push(
        lock.run(key, version, async () => {
          await settle();
          if (i % 13 === 0) throw new StoreError("unavailable", "injected");
          return "applied" as const;
        }),
      );
    }
    expect(lock.size).toBe(100);
    const outcomes = await Promise.allSettled(runs);
    expect(lock.size).toBe(0);
    const count = (predicate: (o: PromiseSettledResult<unknown>) => boolean): number => outcomes.filter(predicate).length;
    expect(count((o) => o.status === "rejected")).toBeGreaterThan(0);
    expect(count((o) => o.status === "fulfilled" && o.value === "stale")).toBeGreaterThan(0);
    expect(count((o) => o.status === "fulfilled" && o.value === "applied")).toBeGreaterThan(0);
  });

  it("gives up waiting at the deadline, never applies that mutation later, and keeps the queue working", async () => {
    const lock = new VersionedLock();
    const first = gate();
    const held = lock.run("K", 1n, () => first.promise.then(() => "applied" as const));
    const expired = vi.fn(async () => "applied" as const);
    const error = await errorOf(lock.run("K", 2n, expired, { deadline: Date.now() + 50 }));
    expect(error.code).toBe("deadline-exceeded");

    // The caller retries the same version after the deadline; it queues behind the held one.
    const retried = vi.fn(async () => "applied" as const);
    const retry = lock.run("K", 2n, retried);
    const next = lock.run("K", 3n, async () => "applied" as const, { deadline: Date.now() + 10_000 });
    first.open();
    await expect(held).resolves.toBe("applied");
    // The abandoned mutation did not raise the applied version, so the retry of version 2 applies.
    await expect(retry).resolves.toBe("applied");
    await expect(next).resolves.toBe("applied");
    await settle();
    expect(expired).not.toHaveBeenCalled();
    expect(retried).toHaveBeenCalledOnce();
    expect(lock.size).toBe(0);
  });

  it("applies a mutation whose deadline is not reached", async () => {
    const lock = new VersionedLock();
    await expect(lock.run("K", 1n, async () => "applied" as const, { deadline: Date.now() + 10_000 })).resolves.toBe("applied");
    expect(lock.size).toBe(0);
  });

  // Known bug (reported): setTimeout clamps delays above 2^31-1 ms (~24.8 days) to 1 ms, so a far
  // deadline expires at once and a mutation taking longer than 1 ms gets deadline-exceeded.
  it("honours a deadline further away than setTimeout's 24.8-day range", async () => {
    const lock = new VersionedLock();
    const thirtyDays = 30 * 24 * 60 * 60 * 1000;
    const slow = (): Promise<"applied"> => new Promise((resolve) => setTimeout(() => resolve("applied"), 20));
    await expect(lock.run("K", 1n, slow, { deadline: Date.now() + thirtyDays })).resolves.toBe("applied");
    expect(lock.size).toBe(0);
  });

  it("reports what a running mutation did even when the deadline passes while it runs", async () => {
    const lock = new VersionedLock();
    const first = gate();
    const held = lock.run("K", 1n, () => first.promise.then(() => "applied" as const));
    const running = gate();
    // Queued behind `held` with a deadline; it starts in time, then runs past its deadline.
    const second = lock.run(
      "K",
      2n,
      async () => {
        await running.promise;
        return "applied" as const;
      },
      { deadline: Date.now() + 100 },
    );
    first.open();
    await held;
    await new Promise((resolve) => setTimeout(resolve, 200));
    running.open();
    await expect(second).resolves.toBe("applied");
    expect(lock.size).toBe(0);
  });

  it("does not raise the applied version when the tiers report the mutation stale", async () => {
    const lock = new VersionedLock();
    const first = gate();
    const held = lock.run("K", 5n, () => first.promise.then(() => "stale" as const));
    const lower = vi.fn(async () => "applied" as const);
    const next = lock.run("K", 3n, lower);
    first.open();
    await expect(held).resolves.toBe("stale");
    await expect(next).resolves.toBe("applied");
    expect(lower).toHaveBeenCalledOnce();
  });

  it("ends the wait of a cancelled call with cancelled, and never runs it", async () => {
    const lock = new VersionedLock();
    const first = gate();
    const held = lock.run("K", 1n, () => first.promise.then(() => "applied" as const));
    const controller = new AbortController();
    const never = vi.fn(async () => "applied" as const);
    const waiting = lock.run("K", 2n, never, { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    expect((await errorOf(waiting)).code).toBe("cancelled");
    first.open();
    await held;
    await settle();
    expect(never).not.toHaveBeenCalled();
    expect(lock.size).toBe(0);
  });

  it("holds several keys at once without deadlock, whatever order callers name them in", async () => {
    const lock = new VersionedLock();
    const events: string[] = [];
    const task = (name: string) => async (): Promise<void> => {
      events.push(`start ${name}`);
      await settle();
      events.push(`end ${name}`);
    };
    await Promise.all([
      lock.exclusive(["a", "b"], task("ab")),
      lock.exclusive(["b", "a"], task("ba")),
      lock.exclusive(["b"], task("b")),
    ]);
    // Never interleaved: each task ran alone on the keys it shares with the others.
    expect(events).toHaveLength(6);
    for (let i = 0; i < 6; i += 2) expect(events[i + 1]).toBe(events[i]!.replace("start", "end"));
    expect(events[0]).toBe("start ab");
    expect(lock.size).toBe(0);
  });
});

describe("HybridClock", () => {
  const NOW = 1_700_000_000_000;

  /** `count` versions from `clock`, checked to be strictly increasing. */
  function expectIncreasing(clock: HybridClock, count: number, each?: (version: bigint, i: number) => void): void {
    let previous = 0n;
    for (let i = 0; i < count; i++) {
      const version = clock.next();
      if (version <= previous) expect.fail(`version ${i} (${version}) is not above ${previous}`);
      each?.(version, i);
      previous = version;
    }
  }

  it("stays strictly increasing across 10,000 calls with a frozen clock", () => {
    const clock = new HybridClock(() => NOW);
    expect(clock.next()).toBe(BigInt(NOW) << 20n);
    expectIncreasing(clock, 10_000, (version) => expect(version >> 20n).toBe(BigInt(NOW)));
  });

  it("is dominated by wall time when the wall clock advances", () => {
    let now = NOW;
    const clock = new HybridClock(() => now);
    // Many calls within one millisecond, then the millisecond moves on: the counter resets.
    expectIncreasing(clock, 1_000, (version, i) => {
      expect(version >> 20n).toBe(BigInt(now));
      if (i % 100 === 99) now += 1 + (i % 7);
    });
  });

  it("keeps increasing when the wall clock steps back", () => {
    let now = NOW;
    const clock = new HybridClock(() => now);
    const before = clock.next();
    now -= 60_000;
    const after = clock.next();
    expect(after).toBeGreaterThan(before);
  });

  it("refuses a caller version beyond the allowed skew and accepts one within it, without moving its proposals", () => {
    const clock = new HybridClock(() => NOW, 60_000);
    const tooFar = BigInt(NOW + 61_000) << 20n;
    expect(() => clock.admit(tooFar, "write k")).toThrowError(/more than 60000 ms ahead/);
    const near = BigInt(NOW + 59_000) << 20n;
    clock.admit(near, "write k");
    // One tenant's far-ahead version must not move every tenant's proposals (issue 17).
    expect(clock.next()).toBe(BigInt(NOW) << 20n);
  });

  it("uses Date.now by default", () => {
    const before = BigInt(Date.now());
    const version = new HybridClock().next();
    expect(version >> 20n).toBeGreaterThanOrEqual(before);
    expect(version >> 20n).toBeLessThanOrEqual(BigInt(Date.now()));
  });
});
