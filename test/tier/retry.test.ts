// Retries (contract §4): withRetry's attempts, deadline and retryable codes, and the TierStore's per-tier policies.
import { describe, expect, it } from "vitest";
import { StoreError, type StoreErrorCode } from "../../src/store/errors.js";
import { MemoryStore } from "../../src/store/memory.js";
import { NO_RETRY, withRetry, type RetryPolicy } from "../../src/tier/retry.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { FlakyStore } from "../support/fault-stores.js";
import { FAST_RETRY, at, bytes, errorOf, ns, text } from "./tier-test-helpers.js";

const MONITORS = ns("monitors");
const KEY = at(MONITORS, "chan_1");
/** FAST_RETRY with room for three failures before a success. */
const FAST_RETRY_5: RetryPolicy = { ...FAST_RETRY, maxAttempts: 5 };

/** An operation that throws `failures[i]` on call i and then resolves "ok"; counts its calls. */
function scripted(failures: readonly unknown[]): { operation: () => Promise<string>; calls: () => number } {
  let calls = 0;
  return {
    operation: async () => {
      const failure = failures[calls++];
      if (failure !== undefined) throw failure;
      return "ok";
    },
    calls: () => calls,
  };
}

const unavailable = (n: number): StoreError => new StoreError("unavailable", `unavailable #${n}`);

describe("withRetry", () => {
  it("retries retryable failures and resolves once the operation succeeds", async () => {
    const op = scripted([unavailable(1), unavailable(2), unavailable(3)]);
    const observed: Array<[number, string]> = [];
    const result = await withRetry(op.operation, FAST_RETRY_5, undefined, (attempt, error, delayMs) => {
      expect(delayMs).toBeGreaterThanOrEqual(0);
      expect(delayMs).toBeLessThanOrEqual(FAST_RETRY_5.maxDelayMs);
      observed.push([attempt, error.message]);
    });
    expect(result).toBe("ok");
    expect(op.calls()).toBe(4);
    expect(observed).toEqual([
      [1, "unavailable #1"],
      [2, "unavailable #2"],
      [3, "unavailable #3"],
    ]);
  });

  it("makes exactly maxAttempts calls and rejects with the last error when nothing succeeds", async () => {
    const op = scripted(Array.from({ length: 100 }, (_, i) => unavailable(i + 1)));
    let retries = 0;
    const error = await errorOf(withRetry(op.operation, FAST_RETRY_5, undefined, () => retries++));
    expect(op.calls()).toBe(FAST_RETRY_5.maxAttempts);
    expect(retries).toBe(FAST_RETRY_5.maxAttempts - 1);
    expect(error.message).toBe(`unavailable #${FAST_RETRY_5.maxAttempts}`);
  });

  it("stops at the deadline, long before running out of attempts", async () => {
    const op = scripted(Array.from({ length: 1000 }, (_, i) => unavailable(i + 1)));
    const policy: RetryPolicy = { initialDelayMs: 50, maxDelayMs: 50, maxAttempts: 1000 };
    const started = Date.now();
    const error = await errorOf(withRetry(op.operation, policy, started + 300));
    expect(error.code).toBe("unavailable");
    expect(op.calls()).toBeGreaterThan(1);
    expect(op.calls()).toBeLessThan(50);
    expect(error.message).toBe(`unavailable #${op.calls()}`);
    // 1000 attempts at up to 50 ms each would take tens of seconds.
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("does not retry when the deadline has already passed", async () => {
    const op = scripted([unavailable(1)]);
    const error = await errorOf(withRetry(op.operation, FAST_RETRY_5, Date.now() - 1));
    expect(error.message).toBe("unavailable #1");
    expect(op.calls()).toBe(1);
  });

  it.each<StoreErrorCode>(["invalid-argument", "not-found", "internal", "deadline-exceeded", "resource-exhausted"])(
    "does not retry %s",
    async (code) => {
      const thrown = new StoreError(code, `injected ${code}`);
      const op = scripted([thrown]);
      let retries = 0;
      const error = await errorOf(withRetry(op.operation, FAST_RETRY_5, undefined, () => retries++));
      expect(error).toBe(thrown);
      expect(op.calls()).toBe(1);
      expect(retries).toBe(0);
    },
  );

  it("turns a plain Error into internal without retrying, keeping it as the cause", async () => {
    const thrown = new Error("/secret/path exploded");
    const op = scripted([thrown]);
    const error = await errorOf(withRetry(op.operation, FAST_RETRY_5));
    expect(error.code).toBe("internal");
    expect(error.message).not.toContain("/secret/path");
    expect(error.cause).toBe(thrown);
    expect(op.calls()).toBe(1);
  });
});

describe("TierStore retries", () => {
  it("retries a flaky primary until the write succeeds, and counts the retries", async () => {
    const primary = new FlakyStore(new MemoryStore(), 2, "unavailable", ["write"]);
    const tier = new TierStore({ primary, retry: { primary: FAST_RETRY } });
    await tier.write(KEY, bytes("v"));
    expect(primary.calls).toBe(3);
    expect(tier.snapshot().retries).toBe(2);
    expect(text(await tier.read(KEY))).toBe("v");
    await tier.close();
  });

  it("retries flaky reads and lists of the primary too", async () => {
    const inner = new MemoryStore();
    await inner.write(KEY, bytes("v"));
    const primary = new FlakyStore(inner, 2, "unavailable", ["read", "list"]);
    const tier = new TierStore({ primary, retry: { primary: FAST_RETRY_5 } });
    expect(text(await tier.read(KEY))).toBe("v");
    primary.failures = 2;
    expect(await tier.list(MONITORS)).toEqual(["chan_1"]);
    expect(tier.snapshot().retries).toBe(4);
    await tier.close();
  });

  it("fails the call on the first failure of a tier whose policy is NO_RETRY", async () => {
    const primary = new FlakyStore(new MemoryStore(), 1, "unavailable");
    const backup = new FlakyStore(new MemoryStore(), 0, "unavailable");
    const tier = new TierStore({ primary, backup, retry: { primary: NO_RETRY, backup: NO_RETRY } });
    expect((await errorOf(tier.write(KEY, bytes("v1")))).code).toBe("unavailable");
    expect(primary.calls).toBe(1);
    expect(tier.snapshot().retries).toBe(0);

    backup.failures = 1;
    expect((await errorOf(tier.write(KEY, bytes("v2")))).code).toBe("unavailable");
    // v1 never reached the backup: the primary failed when asked for the key's revision.
    expect(backup.calls).toBe(1);
    expect(tier.snapshot().retries).toBe(0);

    // Healthy again: the next call goes through.
    await tier.write(KEY, bytes("v3"));
    expect(text(await tier.read(KEY))).toBe("v3");
    await tier.close();
  });
});
