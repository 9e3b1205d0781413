import { describe, expect, it } from "vitest";
import { LatencyWindow, type TierHealthPolicy } from "../../src/tier/tier-health.js";

const POLICY: TierHealthPolicy = {
  timeLimitP99Multiple: 10,
  timeLimitMinMs: 5,
  timeLimitMaxMs: 30_000,
  breakerFailures: 5,
  breakerFailureMs: 10_000,
  probeInitialDelayMs: 100,
  probeMaxDelayMs: 10_000,
};

describe("a tier's latency window", () => {
  it("keeps the ceiling as the limit until enough calls were seen", () => {
    const window = new LatencyWindow(POLICY);
    for (let i = 0; i < 31; i++) window.record(1);
    expect(window.p99).toBeUndefined();
    expect(window.limitMs).toBe(30_000);
  });

  it("orders durations as numbers (9 ms is faster than 100 ms), not as text", () => {
    const window = new LatencyWindow(POLICY);
    // 99 % of the calls take 9 ms, 1 % 100 ms and 1,000 ms: as text, "9" would sort last.
    for (let i = 0; i < 510; i++) window.record(9);
    window.record(100);
    window.record(1000);
    expect(window.p99).toBe(9);
    expect(window.limitMs).toBe(90);
  });

  it("forgets calls older than its last 512", () => {
    const window = new LatencyWindow(POLICY);
    for (let i = 0; i < 512; i++) window.record(2_000);
    for (let i = 0; i < 512; i++) window.record(0.2);
    expect(window.p99).toBe(0.2);
    expect(window.limitMs).toBe(5); // the floor: 10 × 0.2 ms is below it
  });
});
