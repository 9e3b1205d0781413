//! `node dist/bench/watchers.js [writes per round]`: what idle watchers cost a write, in process — a
//! SQLite store (fsync on) written by 64 concurrent writers, with 0 and with 100 Watch streams on a
//! namespace nothing writes (every commit reaches them, none matches). Rounds alternate the two
//! cases on fresh files; prints JSON with each case's median CPU µs and ops/s per write and the
//! ratio of medians (issue 21's goal: throughput with 100 watchers ≥ 0.9× of none).

import { setMaxListeners } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../src/store/sqlite.js";
import { ChangeFeed } from "../src/watch/change-feed.js";

const ROUNDS = 5;
const WRITERS = 64;
const value = new Uint8Array(1024).fill(7);

interface Round {
  readonly opsPerSecond: number;
  readonly cpuUsPerOp: number;
}

async function round(watchers: number, writes: number): Promise<Round> {
  const dir = mkdtempSync(join(tmpdir(), "tierkv-watchers-"));
  const store = new SqliteStore(join(dir, "kv.db"), { synchronous: "FULL", preallocateWal: true });
  const feed = new ChangeFeed(store);
  const stop = new AbortController();
  setMaxListeners(watchers + 10, stop.signal); // every watch listens on the one signal
  const streams = Array.from({ length: watchers }, () => feed.watch({ storeId: "default", start: 0n, values: false, primaryNamespace: "idle" }, stop.signal));
  // Each watch is open (caught up) once its first progress message came.
  await Promise.all(streams.map((stream) => stream.next()));
  const draining = streams.map(async (stream) => {
    for (let next = await stream.next(); !next.done; next = await stream.next()) if (next.value.kind === "change") throw new Error("an idle watcher saw a change");
  });
  let issued = 0;
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      while (issued < writes) await store.write({ primaryNamespace: "bench", secondaryNamespace: "", key: `k${issued++ % 5000}` }, value);
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  stop.abort();
  feed.close();
  await Promise.allSettled(draining);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return { opsPerSecond: writes / seconds, cpuUsPerOp: (used.user + used.system) / writes };
}

const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const writes = Number(process.argv[2] ?? 20_000);
  const cases = [0, 100];
  const rounds = new Map<number, Round[]>(cases.map((watchers) => [watchers, []]));
  await round(0, writes / 4); // warm-up, not counted
  for (let r = 0; r < ROUNDS; r++) {
    for (const watchers of r % 2 === 0 ? cases : [...cases].reverse()) rounds.get(watchers)!.push(await round(watchers, writes));
  }
  const summary = Object.fromEntries(
    cases.map((watchers) => {
      const results = rounds.get(watchers)!;
      return [`${watchers} watchers`, { opsPerSecond: Math.round(median(results.map((r) => r.opsPerSecond))), cpuUsPerOp: Number(median(results.map((r) => r.cpuUsPerOp)).toFixed(1)), rounds: results }];
    }),
  );
  const ratio = median(rounds.get(100)!.map((r) => r.opsPerSecond)) / median(rounds.get(0)!.map((r) => r.opsPerSecond));
  process.stdout.write(`${JSON.stringify({ writesPerRound: writes, writers: WRITERS, rounds: ROUNDS, ...summary, throughputRatio: Number(ratio.toFixed(2)), goal: 0.9 }, null, 2)}\n`);
}

await main();
