//! `npm run bench`: every workload at every concurrency against every target, side by side in one
//! run with one load generator; JSON, a markdown table and an SVG chart in bench/results/.
//!
//!   npm run bench                 full run: 3 s cells, 3 interleaved rounds (about 30 minutes)
//!   npm run bench -- --quick      short cells, 3 interleaved rounds (about 8 minutes on 2 busy CPUs)
//!   npm run bench -- --smoke      tiny cells, 1 round, for CI: proves the harness works, asserts nothing about speed
//!   npm run bench -- --soak 600   ten minutes of the LDK mix against tierkv, RSS sampled throughout
//!   npm run bench -- --scale      1,000,000 keys: ListPage, start-up, RSS, resync (not in CI; see bench/scale.ts)
//!   npm run bench -- --breakdown-only   only the profiled cost breakdown of a write (bench/breakdown.ts)
//!
//! Rounds: per workload every target is started once; then, round after round, every
//! concurrency level is measured on every target, the targets' order rotated each round, so
//! drift of a noisy machine spreads over all targets instead of landing on one. Rows report the
//! median of the rounds with the spread (min–max). Then, unless --no-breakdown, the cost breakdown:
//! a write alone, with a SQLite backup and chained, each server under `node --cpu-prof`, in
//! interleaved rounds of their own, every sample of the measured windows attributed to a step.
//!
//! A target with a follower beside its leader (tierkv-sqlite+follower) also has the follower's lag
//! read over each of its cells and the time it then takes to catch up (bench/follower-lag.ts).

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, Option } from "commander";
import { attribute, readProfile } from "./breakdown.js";
import { openDriver } from "./drivers.js";
import { FollowerProbe, measureWithLag, type LagRound } from "./follower-lag.js";
import { LoadGenerator, type LoadWindow, type Measurement } from "./loadgen.js";
import { startBenchPostgres, type BenchPostgres } from "./postgres.js";
import { residentBytes } from "./proc-stats.js";
import {
  aggregate,
  breakdownCell,
  checkTargets,
  followerLagRow,
  markdown,
  svgChart,
  type BenchReport,
  type BreakdownCell,
  type FollowerLagRow,
  type ResultRow,
} from "./report.js";
import { runScale } from "./scale.js";
import { measureSqliteCeiling } from "./sqlite-ceiling.js";
import { analyzeDatabase, etcdInstalled, startTarget, stopAtExit, TARGET_INFO, TARGETS, vssAvailable, type RunningTarget, type TargetName } from "./targets.js";
import { DEFAULT_KEY_COUNT, workload, WORKLOADS, type WorkloadName } from "./workloads.js";

interface Mode {
  readonly name: string;
  readonly warmupMs: number;
  /**
   * Before the rounds, each server runs the workload this long at c=16, unmeasured. A Node server
   * runs its hot path in V8's baseline tiers until enough calls have gone through it: measured on
   * tierkv, server CPU per 1 KiB write fell from ~900 to ~300 µs over the first 6 s at c=16 (perf
   * showed baseline code and inline-cache misses). Every target gets the same warm-up.
   */
  readonly serverWarmupMs: number;
  readonly durationMs: number;
  readonly rounds: number;
  readonly concurrency: number[];
  readonly keyCount: number;
  /** Each load loop measures at least this many operations, however slow the machine. */
  readonly minOpsPerLoop: number;
  /** Fresh servers for every workload; smoke mode starts them once for the run. */
  readonly freshPerWorkload: boolean;
  /** The cost breakdown's cells: measured this long, at this concurrency, for these workloads. */
  readonly breakdown: { readonly durationMs: number; readonly concurrency: number; readonly workloads: readonly WorkloadName[] };
}

const MODES: Record<"full" | "quick" | "smoke", Mode> = {
  full: {
    name: "full", warmupMs: 500, serverWarmupMs: 8000, durationMs: 3000, rounds: 3, concurrency: [1, 16, 64], keyCount: DEFAULT_KEY_COUNT, minOpsPerLoop: 0, freshPerWorkload: true,
    breakdown: { durationMs: 3000, concurrency: 64, workloads: ["write-1k", "write-64k"] },
  },
  quick: {
    name: "quick", warmupMs: 100, serverWarmupMs: 3000, durationMs: 500, rounds: 3, concurrency: [1, 16, 64], keyCount: DEFAULT_KEY_COUNT, minOpsPerLoop: 0, freshPerWorkload: true,
    breakdown: { durationMs: 1500, concurrency: 64, workloads: ["write-1k", "write-64k"] },
  },
  smoke: {
    name: "smoke", warmupMs: 50, serverWarmupMs: 0, durationMs: 150, rounds: 1, concurrency: [1, 4], keyCount: 200, minOpsPerLoop: 1, freshPerWorkload: false,
    breakdown: { durationMs: 150, concurrency: 4, workloads: ["write-1k"] },
  },
};

const defaultOut = fileURLToPath(new URL("../../bench/results", import.meta.url));

const program = new Command("bench")
  .option("--quick", "short cells, 3 rounds: about 8 minutes on 2 busy CPUs")
  .option("--smoke", "tiny cells, one round and few keys: checks the harness (CI), not the speed")
  .option("--rounds <n>", "interleaved rounds per cell (default: 3; smoke 1)")
  .option("--concurrency <n...>", "concurrency levels to measure (default: 1 16 64; smoke 1 4)")
  .option("--soak <seconds>", "run the LDK mix against tierkv for this long, sampling server RSS")
  .option("--scale", "the 1,000,000-key scale mode: ListPage latency, start-up, RSS and resync (minutes; not run in CI)")
  .option("--scale-keys <n>", "keys per layout in --scale (default 1,000,000; smaller for a trial)")
  .addOption(new Option("--targets <names...>", "targets to run").choices([...TARGETS]))
  .addOption(new Option("--workloads <names...>", "workloads to run").choices([...WORKLOADS]))
  .option("--no-breakdown", "skip the profiled cost breakdown of a write (alone, SQLite backup, chained)")
  .option("--breakdown-only", "only the profiled cost breakdown")
  .option("--keep-profiles <dir>", "keep the breakdown's CPU profiles (.cpuprofile, for DevTools) in this directory")
  .option("--out <dir>", "where results go", defaultOut)
  .parse();
const options = program.opts<{
  quick?: boolean;
  smoke?: boolean;
  rounds?: string;
  concurrency?: string[];
  soak?: string;
  scale?: boolean;
  scaleKeys?: string;
  targets?: TargetName[];
  workloads?: WorkloadName[];
  breakdown: boolean;
  breakdownOnly?: boolean;
  keepProfiles?: string;
  out: string;
}>();

const began = performance.now();
const log = (line: string): boolean => process.stderr.write(`[${((performance.now() - began) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);

/** The targets this machine can run, the embedded PostgreSQL started when one needs it. */
async function available(wanted: readonly TargetName[]): Promise<{ targets: TargetName[]; skipped: Partial<Record<TargetName, string>>; postgres?: BenchPostgres }> {
  const skipped: Partial<Record<TargetName, string>> = {};
  let postgres: BenchPostgres | undefined;
  const needsPostgres = wanted.some((t) => TARGET_INFO[t].needs === "postgres");
  let postgresFailure: string | undefined;
  if (needsPostgres) {
    try {
      const started = performance.now();
      postgres = await startBenchPostgres();
      if (postgres.postmasterPid !== undefined) stopAtExit(postgres.postmasterPid);
      log(`PostgreSQL started in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } catch (error) {
      postgresFailure = `PostgreSQL did not start: ${(error as Error).message.split("\n")[0]}`;
    }
  }
  const targets = wanted.filter((target) => {
    const needs = TARGET_INFO[target].needs;
    const why =
      needs === "etcd" && !etcdInstalled()
        ? "etcd is not installed (Debian: apt-get install etcd-server)"
        : needs === "vss" && !vssAvailable()
          ? "this tierkv has no --vss-listen"
          : needs === "postgres" && postgres === undefined
            ? postgresFailure
            : undefined;
    if (why !== undefined) {
      skipped[target] = why;
      log(`skipping ${target}: ${why}`);
    }
    return why === undefined;
  });
  return { targets, skipped, ...(postgres !== undefined && { postgres }) };
}

/** A cell that could not be measured at all (the load generator failed): one error, no figures. */
function failedCell(error: unknown): Measurement {
  return {
    opsPerSecond: NaN,
    ops: 0,
    errors: 1,
    firstError: (error as Error).message,
    p50Ms: NaN,
    p99Ms: NaN,
    p999Ms: NaN,
    serverCpuUsPerOp: NaN,
    databaseCpuUsPerOp: NaN,
    clientCpuUsPerOp: NaN,
    serverPeakRssMiB: NaN,
  };
}

/** Order of the targets in round `round`: rotated by one per round. */
function rotated<T>(items: readonly T[], round: number): T[] {
  const k = items.length === 0 ? 0 : round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** Starts `names` side by side; if one fails, stops the others and throws. */
async function startAll(names: readonly TargetName[], postgres: BenchPostgres | undefined): Promise<Map<TargetName, RunningTarget>> {
  log(`starting ${names.join(", ")}`);
  const started = await Promise.allSettled(names.map((t) => startTarget(t, { ...(postgres !== undefined && { postgres }) })));
  const running = new Map<TargetName, RunningTarget>();
  started.forEach((result, i) => {
    if (result.status === "fulfilled") running.set(names[i]!, result.value);
  });
  const failed = started.find((result): result is PromiseRejectedResult => result.status === "rejected");
  if (failed) {
    await stopAll(running);
    throw failed.reason;
  }
  return running;
}

async function stopAll(running: Map<TargetName, RunningTarget>): Promise<void> {
  await Promise.all([...running.values()].map((server) => server.stop()));
  running.clear();
}

/** The configurations the cost breakdown compares: a write alone, with a SQLite backup, chained. */
const BREAKDOWN_TARGETS: readonly TargetName[] = ["tierkv-sqlite", "tierkv-sqlite+sqlite-backup", "tierkv-sqlite+remote-backup"];

/**
 * The cost breakdown: per workload, the three configurations run under `node --cpu-prof` (the
 * profiler costs a few per cent, so these cells are not the table's), warmed like the others,
 * then measured in interleaved rounds; each round's window of each profile is attributed to steps.
 */
async function breakdown(mode: Mode, rounds: number, generator: LoadGenerator): Promise<BreakdownCell[]> {
  const targets = BREAKDOWN_TARGETS.filter((t) => options.targets === undefined || options.targets.includes(t));
  const workloads = mode.breakdown.workloads.filter((w) => options.workloads === undefined || options.workloads.includes(w));
  const cells: BreakdownCell[] = [];
  for (const name of workloads) {
    if (targets.length === 0) break;
    const profileDir = options.keepProfiles === undefined ? mkdtempSync(join(tmpdir(), "tierkv-bench-profiles-")) : join(options.keepProfiles, name);
    mkdirSync(profileDir, { recursive: true });
    try {
      log(`breakdown ${name}: starting ${targets.join(", ")} under --cpu-prof`);
      const running = new Map<TargetName, RunningTarget>();
      const profiles = new Map<TargetName, ReadonlyArray<{ path: string; role: string }>>();
      const measured = new Map<TargetName, Measurement[]>();
      try {
        for (const target of targets) {
          const server = await startTarget(target, { profileDir });
          running.set(target, server);
          profiles.set(target, server.profiles ?? []);
        }
        for (const target of targets) {
          const server = running.get(target)!;
          if (mode.serverWarmupMs > 0) {
            await generator
              .measure({ kind: server.kind, addresses: server.addresses, serverPids: server.pids, workload: name, keyCount: mode.keyCount, concurrency: 16, warmupMs: 0, durationMs: mode.serverWarmupMs })
              .catch((error: unknown) => failedCell(error));
          }
        }
        for (let round = 0; round < rounds; round++) {
          for (const target of rotated(targets, round)) {
            const server = running.get(target)!;
            const result = await generator
              .measure({
                kind: server.kind,
                addresses: server.addresses,
                serverPids: server.pids,
                workload: name,
                keyCount: mode.keyCount,
                concurrency: mode.breakdown.concurrency,
                warmupMs: mode.warmupMs,
                durationMs: mode.breakdown.durationMs,
                minOpsPerLoop: mode.minOpsPerLoop,
              })
              .catch((error: unknown) => failedCell(error));
            measured.set(target, [...(measured.get(target) ?? []), result]);
            log(`breakdown r${round + 1}/${rounds} ${target.padEnd(28)} ${name} ${result.opsPerSecond.toFixed(0).padStart(7)} ops/s  cpu ${result.serverCpuUsPerOp.toFixed(0)} µs/op  errors ${result.errors}`);
          }
        }
      } finally {
        // Stopping the servers (SIGTERM, a clean exit) is what writes their profiles.
        await stopAll(running);
      }
      for (const target of targets) {
        const measurements = measured.get(target) ?? [];
        const windows = measurements.map((m) => m.windowUs ?? ([0, 0] as const));
        const processes = (profiles.get(target) ?? []).map((profile) => ({ role: profile.role, rounds: attribute(readProfile(profile.path), windows) }));
        cells.push(breakdownCell(target, name, mode.breakdown.concurrency, measurements, processes));
      }
    } finally {
      if (options.keepProfiles === undefined) rmSync(profileDir, { recursive: true, force: true });
    }
  }
  return cells;
}

async function benchmark(mode: Mode, rounds: number): Promise<BenchReport> {
  const startedAt = new Date().toISOString();
  const loadAverage = loadavg();
  const { targets, skipped, postgres } = await available(options.breakdownOnly ? [] : (options.targets ?? [...TARGETS]));
  const workloads = (options.workloads ?? [...WORKLOADS]).filter((w) => targets.some((t) => TARGET_INFO[t].workloads.includes(w)));
  const generator = new LoadGenerator();
  const rows: ResultRow[] = [];
  const followerLag: FollowerLagRow[] = [];
  let costs: BreakdownCell[] = [];
  // Servers shared by every workload (smoke mode: starting them is most of its time).
  let shared = new Map<TargetName, RunningTarget>();
  try {
    if (!mode.freshPerWorkload) shared = await startAll(targets.filter((t) => workloads.some((w) => TARGET_INFO[t].workloads.includes(w))), postgres);
    for (const name of workloads) {
      const here = targets.filter((t) => TARGET_INFO[t].workloads.includes(name));
      // Fresh servers per workload (quick, full): earlier workloads' data and WAL do not weigh on later ones.
      const running = mode.freshPerWorkload ? await startAll(here, postgres) : shared;
      try {
        // Side by side: mostly waiting for fsyncs, which overlap.
        await Promise.all(
          here.map(async (target) => {
            const server = running.get(target)!;
            const driver = openDriver(server.kind, server.addresses[0]!, { connections: 64 });
            try {
              await workload(name, mode.keyCount).prepare(driver);
            } finally {
              driver.close();
            }
            await analyzeDatabase(server);
          }),
        );
        log(`${name}: prepared ${here.join(", ")}`);
        if (mode.serverWarmupMs > 0) {
          for (const target of here) {
            const server = running.get(target)!;
            await generator
              .measure({ kind: server.kind, addresses: server.addresses, serverPids: server.pids, workload: name, keyCount: mode.keyCount, concurrency: 16, warmupMs: 0, durationMs: mode.serverWarmupMs, minOpsPerLoop: 0 })
              .catch((error: unknown) => failedCell(error));
          }
          log(`${name}: warmed ${here.join(", ")} for ${mode.serverWarmupMs} ms each (c=16, not measured)`);
        }
        const samples = new Map<string, Measurement[]>();
        const lagSamples = new Map<string, LagRound[]>();
        for (let round = 0; round < rounds; round++) {
          for (const concurrency of mode.concurrency) {
            for (const target of rotated(here, round)) {
              const server = running.get(target)!;
              const measure = (onClock?: (window: LoadWindow) => void): Promise<Measurement> =>
                generator
                  .measure({
                    kind: server.kind,
                    addresses: server.addresses,
                    serverPids: server.pids,
                    ...(server.databasePid !== undefined && { databasePid: server.databasePid }),
                    workload: name,
                    keyCount: mode.keyCount,
                    concurrency,
                    warmupMs: mode.warmupMs,
                    durationMs: mode.durationMs,
                    minOpsPerLoop: mode.minOpsPerLoop,
                    ...(onClock !== undefined && { onClock }),
                  })
                  .catch((error: unknown) => failedCell(error));
              const cell = `${target}\u0000${concurrency}`;
              let result: Measurement;
              let lag: LagRound | undefined;
              if (server.follower === undefined) {
                result = await measure();
              } else {
                const probe = new FollowerProbe(server.addresses[0]!, server.follower.address);
                try {
                  ({ measurement: result, lag } = await measureWithLag(probe, measure));
                } finally {
                  probe.close();
                }
                lagSamples.set(cell, [...(lagSamples.get(cell) ?? []), lag]);
              }
              samples.set(cell, [...(samples.get(cell) ?? []), result]);
              log(
                `r${round + 1}/${rounds} ${target.padEnd(28)} ${name.padEnd(9)} c=${String(concurrency).padEnd(3)} ${result.opsPerSecond.toFixed(0).padStart(7)} ops/s  ` +
                  `p50 ${result.p50Ms.toFixed(2)} ms  cpu ${result.serverCpuUsPerOp.toFixed(0)} µs/op  errors ${result.errors}${result.firstError ? ` (${result.firstError})` : ""}` +
                  (lag === undefined
                    ? ""
                    : lag.error !== undefined
                      ? `  follower lag: ${lag.error}`
                      : `  follower lag p50/p99: reported ${lag.reported.p50Changes}/${lag.reported.p99Changes} changes ${lag.reported.p50Seconds.toFixed(2)}/${lag.reported.p99Seconds.toFixed(2)} s, ` +
                        `actual ${lag.actual.p50Changes}/${lag.actual.p99Changes} changes ${lag.actual.p50Seconds.toFixed(2)}/${lag.actual.p99Seconds.toFixed(2)} s ` +
                        `(${lag.samples} readings); caught up in ${lag.catchUpMs.toFixed(0)} ms`),
              );
            }
          }
        }
        // Rows in the order of TARGETS and concurrency, whatever order they were measured in.
        for (const target of here) {
          for (const concurrency of mode.concurrency) {
            const cell = `${target}\u0000${concurrency}`;
            rows.push(aggregate(target, name, concurrency, samples.get(cell) ?? []));
            const lag = lagSamples.get(cell);
            if (lag !== undefined) followerLag.push(followerLagRow(target, name, concurrency, lag));
          }
        }
      } finally {
        if (mode.freshPerWorkload) await stopAll(running);
      }
    }
    await stopAll(shared); // the breakdown's servers get the machine to themselves
    if (options.breakdown) costs = await breakdown(mode, rounds, generator);
  } finally {
    await stopAll(shared);
    await generator.close();
    await postgres?.stop();
  }
  return {
    startedAt,
    mode: mode.name,
    machine: { cpus: availableParallelism(), node: process.version, loadAverage },
    warmupMs: mode.warmupMs,
    serverWarmupMs: mode.serverWarmupMs,
    durationMs: mode.durationMs,
    rounds,
    targets: Object.fromEntries(targets.map((t) => [t, TARGET_INFO[t].description])),
    skipped,
    rows,
    sqliteCeiling: options.breakdownOnly ? [] : measureSqliteCeiling(mode.name === "smoke" ? 100 : 1000),
    checks: checkTargets(rows),
    breakdown: costs,
    followerLag,
  };
}

/** Chunks of load back to back for `seconds`, server RSS sampled after each. */
async function soak(seconds: number): Promise<void> {
  const running = await startTarget("tierkv-sqlite");
  const generator = new LoadGenerator();
  const samples: Array<{ atSeconds: number; rssMiB: number; anonymousMiB: number; fileMiB: number; opsPerSecond: number; errors: number }> = [];
  try {
    const driver = openDriver(running.kind, running.addresses[0]!);
    await workload("ldk-mix").prepare(driver);
    driver.close();
    const started = Date.now();
    while (Date.now() - started < seconds * 1000) {
      const chunk = await generator.measure({
        kind: running.kind,
        addresses: running.addresses,
        serverPids: running.pids,
        workload: "ldk-mix",
        keyCount: DEFAULT_KEY_COUNT,
        concurrency: 16,
        warmupMs: 0,
        durationMs: Math.min(10_000, seconds * 1000),
      });
      const resident = residentBytes(running.pids[0]!);
      const mib = (bytes: number): number => bytes / (1024 * 1024);
      const sample = {
        atSeconds: Math.round((Date.now() - started) / 1000),
        rssMiB: mib(resident.total),
        anonymousMiB: mib(resident.anonymous),
        fileMiB: mib(resident.file),
        opsPerSecond: chunk.opsPerSecond,
        errors: chunk.errors,
      };
      samples.push(sample);
      log(
        `soak ${sample.atSeconds}s: ${sample.opsPerSecond.toFixed(0)} ops/s, RSS ${sample.rssMiB.toFixed(1)} MiB ` +
          `(anonymous ${sample.anonymousMiB.toFixed(1)}, file-backed ${sample.fileMiB.toFixed(1)}), errors ${sample.errors}`,
      );
    }
  } finally {
    await generator.close();
    await running.stop();
  }
  // Flat: anonymous memory (where a leak would show) at the end within 10% (or 16 MiB) of what it
  // was once warm (after the first quarter). File-backed pages follow the database's size.
  const warm = samples[Math.floor(samples.length / 4)]!;
  const last = samples.at(-1)!;
  const growthMiB = last.anonymousMiB - warm.anonymousMiB;
  const result = {
    seconds,
    samples,
    errors: samples.reduce((sum, s) => sum + s.errors, 0),
    anonymousGrowthMiB: growthMiB,
    flat: growthMiB <= Math.max(16, warm.anonymousMiB * 0.1),
  };
  mkdirSync(options.out, { recursive: true });
  writeFileSync(join(options.out, "soak.json"), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify({ seconds, errors: result.errors, anonymousGrowthMiB: growthMiB, flat: result.flat })}\n`);
}

if (options.soak !== undefined) {
  await soak(Number(options.soak));
} else if (options.scale) {
  await runScale({ keys: Number(options.scaleKeys ?? 1_000_000), out: options.out });
} else {
  const base = options.smoke ? MODES.smoke : options.quick ? MODES.quick : MODES.full;
  const mode = options.concurrency === undefined ? base : { ...base, concurrency: options.concurrency.map(Number) };
  const rounds = options.rounds === undefined ? mode.rounds : Math.max(1, Number(options.rounds));
  const report = await benchmark(mode, rounds);
  mkdirSync(options.out, { recursive: true });
  writeFileSync(join(options.out, `${mode.name}.json`), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(options.out, `${mode.name}.md`), `${markdown(report)}\n`);
  writeFileSync(join(options.out, `${mode.name}.svg`), `${svgChart(report)}\n`);
  process.stdout.write(`${markdown(report)}\n`);
  log(`results: ${join(options.out, mode.name)}.{json,md,svg}`);
}
