// The actual staleness of a follower from paired readings: the commit time of the first change it
// lacks, placed between the two readings whose leader counts enclose it.
import { expect, it } from "vitest";
import { staleness, type Sample } from "../../bench/follower-lag.js";

const sample = (at: number, leaderChanges: number, appliedChanges: number): Sample => ({
  at,
  leaderChanges: BigInt(leaderChanges),
  appliedChanges: BigInt(appliedChanges),
  lagChanges: 0,
  lagSeconds: 0,
  fullCopies: 1n,
});

it("is 0 when the follower has every change, whatever it reported", () => {
  const samples = [sample(0, 100, 100), sample(100, 200, 200), sample(200, 300, 301)];
  expect([0, 1, 2].map((i) => staleness(samples, i))).toEqual([0, 0, 0]);
});

it("dates the first missing change between the leader counts around it", () => {
  // The leader went 100 → 300 between 0 and 100 ms, so change 151 (51 of those 200) was committed
  // at 25.5 ms; at 300 ms the follower has 150: its view is 274.5 ms old.
  const samples = [sample(0, 100, 100), sample(100, 300, 120), sample(200, 500, 140), sample(300, 700, 150)];
  expect(staleness(samples, 3)).toBeCloseTo(0.2745, 6);
  // Change 141 (leader 100 → 300 over 0–100 ms) at 20.5 ms, seen from 200 ms.
  expect(staleness(samples, 2)).toBeCloseTo(0.1795, 6);
});

it("counts from the first reading when the missing change is older than it", () => {
  const samples = [sample(0, 100, 50), sample(100, 200, 60)];
  expect(staleness(samples, 1)).toBeCloseTo(0.1, 6);
});
