//! A follower's lag under a write cell, read every 100 ms over the measured window, two ways:
//!
//! - as the follower reports it: backup-status `follower.lagChanges` and `lagSeconds`, the figures
//!   `tierkv_follower_lag_changes` and `tierkv_follower_lag_seconds` mirror (backup-status rather
//!   than /metrics: the same `status()` in one small unary call, where /metrics renders every
//!   metric, Node's process metrics included);
//! - as it is: the leader's count of changes committed (its stores' latest sequences) less the
//!   follower's count applied, read at the same moment, and how old the follower's view is (the
//!   commit time of its first missing change, interpolated between the readings' leader counts).
//!
//! The follower's own report only knows what the leader's progress messages said, at most once a
//! second while it is busy, so under a steady load it can read 0 while the follower is a second
//! behind; the second view is the one to judge the follower by. Then, once the writers stop, the
//! time until the follower has applied the last change the leader committed.

import { TierkvAdminClient } from "../src/client/admin-client.js";
import { TierkvClient } from "../src/client/client.js";
import type { LoadWindow, Measurement } from "./loadgen.js";

/** How often the lag is read while the writers run. */
export const LAG_SAMPLE_MS = 100;
/** How often the follower is read once the writers stop, until it caught up: the catch-up time's resolution. */
export const CATCH_UP_POLL_MS = 10;
/** A follower still behind this long after the writers stopped is reported as not caught up. */
const CATCH_UP_TIMEOUT_MS = 60_000;
/** How long a new follower may take to copy its (empty) leader and open its watch. */
const TAILING_TIMEOUT_MS = 30_000;
/** Deadline of one status or heads call: a wedged server fails the round's lag, not the run. */
const CALL_TIMEOUT_MS = 10_000;

/** Nearest-rank percentiles of one lag figure's readings in one window (p99 of 30 readings is their largest). */
export interface LagFigures {
  readonly p50Changes: number;
  readonly p99Changes: number;
  readonly maxChanges: number;
  readonly p50Seconds: number;
  readonly p99Seconds: number;
  readonly maxSeconds: number;
}

/** The lag of one round of one cell (one measured window). */
export interface LagRound {
  /** Readings inside the measured window. */
  readonly samples: number;
  /** What the follower said (backup-status, the metrics). */
  readonly reported: LagFigures;
  /** The leader's count less the follower's, and the age of the follower's first missing change. */
  readonly actual: LagFigures;
  /**
   * From the last write's answer to the first reading showing every change the leader committed
   * applied, in ms (resolution ~10 ms); NaN when the follower had not caught up 60 s later.
   */
  readonly catchUpMs: number;
  /** Why the lag of this round could not be read. */
  readonly error?: string;
}

/** The follower's status; `at`: when its answer arrived (ms since epoch). */
export interface Reading {
  readonly at: number;
  readonly lagChanges: number;
  readonly lagSeconds: number;
  readonly appliedChanges: bigint;
  readonly fullCopies: bigint;
}

/** A reading of the follower with the leader's count of changes, asked for together. */
export interface Sample extends Reading {
  readonly leaderChanges: bigint;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const sleepUntil = (at: number): Promise<void> => sleep(Math.max(0, at - Date.now()));

/** The follower's status, and its leader's count of changes. */
export class FollowerProbe {
  private readonly admin: TierkvAdminClient;
  private readonly leader: TierkvClient;

  constructor(leaderAddress: string, followerAddress: string) {
    // Both instances take unauthenticated loopback callers (`--auth none`): the probe needs no token.
    this.admin = new TierkvAdminClient({ address: followerAddress, timeoutMs: CALL_TIMEOUT_MS });
    this.leader = new TierkvClient({ address: leaderAddress, timeoutMs: CALL_TIMEOUT_MS });
  }

  async read(): Promise<Reading> {
    const { follower } = await this.admin.backupStatus();
    if (follower === undefined) throw new Error(`${this.admin.address} follows no leader`);
    if (follower.fullCopies !== 1n) {
      // It started beside an empty leader, so its one full copy copied nothing and it tailed every
      // change from each store's first: only then does its count applied equal the leader's once caught up.
      throw new Error(`the follower made ${follower.fullCopies} full copies of the leader: its count of changes applied no longer compares with the leader's`);
    }
    return {
      at: Date.now(),
      lagChanges: Number(follower.lagChanges),
      lagSeconds: follower.lagSeconds,
      appliedChanges: follower.appliedChanges,
      fullCopies: follower.fullCopies,
    };
  }

  /**
   * Every change the leader committed so far: the sum of its stores' latest sequences (a store's
   * sequences run from 1 without gaps), from the first message of an all-stores watch.
   */
  async leaderChanges(): Promise<bigint> {
    const stop = new AbortController();
    try {
      for await (const event of this.leader.watch({ allStores: true }, stop.signal)) {
        // An empty leader's first message carries no heads.
        if (event.kind === "progress") return [...(event.heads ?? new Map<string, bigint>()).values()].reduce((sum, head) => sum + head, 0n);
      }
    } finally {
      stop.abort();
    }
    throw new Error("the leader's watch ended before its first message");
  }

  /** The leader's count and the follower's status, asked for at once so that they describe one moment. */
  async sample(): Promise<Sample> {
    const [leaderChanges, reading] = await Promise.all([this.leaderChanges(), this.read()]);
    return { ...reading, at: Date.now(), leaderChanges };
  }

  /**
   * Reads the follower every 10 ms, each reading added to `readings`, until one shows `changes`
   * applied; resolves with that reading, or undefined at `deadline`.
   */
  async applied(changes: bigint, readings: Reading[], deadline: number): Promise<Reading | undefined> {
    for (;;) {
      const last = readings.at(-1);
      if (last !== undefined && last.appliedChanges >= changes) return last;
      if (Date.now() >= deadline) return undefined;
      if (last !== undefined) await sleep(CATCH_UP_POLL_MS);
      readings.push(await this.read());
    }
  }

  close(): void {
    this.admin.close();
    void this.leader.close();
  }
}

/** Nearest rank, as the load generator's latency percentiles. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

function figures(changes: readonly number[], seconds: readonly number[]): LagFigures {
  const c = [...changes].sort((a, b) => a - b);
  const s = [...seconds].sort((a, b) => a - b);
  return {
    p50Changes: percentile(c, 0.5),
    p99Changes: percentile(c, 0.99),
    maxChanges: c.at(-1) ?? NaN,
    p50Seconds: percentile(s, 0.5),
    p99Seconds: percentile(s, 0.99),
    maxSeconds: s.at(-1) ?? NaN,
  };
}

/**
 * How old the follower's view is at `samples[i]`, in seconds: the time since the leader committed
 * the first change the follower has not applied (0 when it has them all). That commit falls
 * between two samples' leader counts and is placed between them in proportion. `samples[0]` is
 * taken before the load starts, with the follower caught up, so every change missing later was
 * committed after it.
 */
export function staleness(samples: readonly Sample[], i: number): number {
  const { at, appliedChanges, leaderChanges } = samples[i]!;
  if (appliedChanges >= leaderChanges) return 0;
  const missing = appliedChanges + 1n;
  const k = samples.findIndex((s) => s.leaderChanges >= missing);
  if (k <= 0) return (at - samples[0]!.at) / 1000; // committed before the first sample: at least this old
  const [before, after] = [samples[k - 1]!, samples[k]!];
  const committedAt = before.at + (Number(missing - before.leaderChanges) / Number(after.leaderChanges - before.leaderChanges)) * (after.at - before.at);
  return Math.max(0, at - committedAt) / 1000;
}

function unmeasured(error: unknown): LagRound {
  const none = figures([], []);
  return { samples: 0, reported: none, actual: none, catchUpMs: NaN, error: error instanceof Error ? error.message : String(error) };
}

/**
 * Samples from `baseline` (the follower caught up, before the load) through `window`, then the
 * catch-up after `measured` (the load) is over.
 */
async function follow(probe: FollowerProbe, baseline: Sample, window: LoadWindow, measured: Promise<Measurement>, over: () => boolean): Promise<LagRound> {
  // From the start of the load's warm-up (the staleness of the window's first readings is placed
  // between the leader's counts before them), on a grid through the window's start: however short
  // the window, a reading is asked for as it opens.
  const samples: Sample[] = [baseline];
  const inWindow: number[] = [];
  let next = window.measureFrom - Math.floor(Math.max(0, window.measureFrom - Date.now()) / LAG_SAMPLE_MS) * LAG_SAMPLE_MS;
  for (;;) {
    await sleepUntil(next);
    if (Date.now() >= window.endAt) break;
    if (next >= window.measureFrom) inWindow.push(samples.length);
    samples.push(await probe.sample());
    // A slow answer shifts the next reading instead of bunching readings up behind it.
    next = Math.max(next + LAG_SAMPLE_MS, Date.now());
  }
  // Until the load generator has every loop's answer (writes in flight at the window's end are
  // still landing), read at the catch-up pace: the follower may catch up before that.
  const after: Reading[] = [];
  while (!over()) {
    after.push(await probe.read());
    await sleep(CATCH_UP_POLL_MS);
  }
  const { loadEndedAt } = await measured;
  const changes = await probe.leaderChanges();
  const caughtUp = after.find((r) => r.appliedChanges >= changes) ?? (await probe.applied(changes, after, Date.now() + CATCH_UP_TIMEOUT_MS));
  const measuredSamples = inWindow.map((i) => samples[i]!);
  return {
    samples: inWindow.length,
    reported: figures(
      measuredSamples.map((s) => s.lagChanges),
      measuredSamples.map((s) => s.lagSeconds),
    ),
    actual: figures(
      measuredSamples.map((s) => Math.max(0, Number(s.leaderChanges - s.appliedChanges))),
      inWindow.map((i) => staleness(samples, i)),
    ),
    // A reading can precede the last answer's arrival at the load generator by a hair.
    catchUpMs: caughtUp === undefined || loadEndedAt === undefined ? NaN : Math.max(0, caughtUp.at - loadEndedAt),
  };
}

/** A sample with the follower caught up, waited for (bounded) if it was not yet. */
async function settled(probe: FollowerProbe): Promise<Sample> {
  const first = await probe.sample();
  const caughtUp = await probe.applied(first.leaderChanges, [first], Date.now() + CATCH_UP_TIMEOUT_MS);
  if (caughtUp === undefined) throw new Error(`the follower had not caught up ${CATCH_UP_TIMEOUT_MS} ms after the previous load`);
  // Nothing writes to the leader between cells: its count still holds.
  return { ...caughtUp, leaderChanges: first.leaderChanges };
}

/**
 * Runs `measure` (a write cell on the follower's leader, which must resolve, a failure included,
 * and call `onClock` once the window is set) and samples the follower's lag beside it. The cell
 * starts from a follower that applied everything so far (the warm-up's, the previous cell's), and
 * ends once it has caught up again: the next cell, on any target, does not share the machine with
 * a follower catching up.
 */
export async function measureWithLag(
  probe: FollowerProbe,
  measure: (onClock: (window: LoadWindow) => void) => Promise<Measurement>,
): Promise<{ measurement: Measurement; lag: LagRound }> {
  let baseline: Sample | undefined;
  let failure: unknown;
  try {
    baseline = await settled(probe);
  } catch (error) {
    failure = error;
  }
  let setClock: (window: LoadWindow) => void = () => undefined;
  const clock = new Promise<LoadWindow>((resolve) => (setClock = resolve));
  let over = false;
  const measured = measure((window) => setClock(window)).finally(() => (over = true));
  let lag: LagRound;
  if (baseline === undefined) {
    lag = unmeasured(failure);
  } else {
    // A load that failed before its clock was set has no window to sample.
    const window = await Promise.race([clock, measured.then(() => undefined)]);
    lag = window === undefined ? unmeasured(new Error("the load did not start")) : await follow(probe, baseline, window, measured, () => over).catch(unmeasured);
  }
  return { measurement: await measured, lag };
}

/** Waits until the follower at `address` made its first copy and tails its leader. */
export async function waitUntilTailing(address: string): Promise<void> {
  const admin = new TierkvAdminClient({ address, timeoutMs: CALL_TIMEOUT_MS });
  try {
    const deadline = Date.now() + TAILING_TIMEOUT_MS;
    for (;;) {
      const { follower } = await admin.backupStatus();
      if (follower?.state === "tailing" && follower.connected) return;
      if (Date.now() >= deadline) throw new Error(`the follower at ${address} was not tailing its leader after ${TAILING_TIMEOUT_MS} ms: ${follower?.lastError ?? "no follower status"}`);
      await sleep(50);
    }
  } finally {
    admin.close();
  }
}
