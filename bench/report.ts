//! Turns measurements into the JSON result, a markdown table with ratios, and an SVG chart.
//!
//! Every cell (target × workload × concurrency) is measured in several rounds; a row carries the
//! median of each figure with its spread (min–max over the rounds), and every ratio is computed
//! from medians.

import { STEPS, type Attribution, type Step } from "./breakdown.js";
import { CATCH_UP_POLL_MS, LAG_SAMPLE_MS, type LagFigures, type LagRound } from "./follower-lag.js";
import type { Measurement } from "./loadgen.js";
import type { SqliteCeiling } from "./sqlite-ceiling.js";
import type { TargetName } from "./targets.js";
import type { WorkloadName } from "./workloads.js";

/** The figures a row reports as median and spread. */
export const FIGURES = ["opsPerSecond", "p50Ms", "p99Ms", "p999Ms", "serverCpuUsPerOp", "databaseCpuUsPerOp", "clientCpuUsPerOp"] as const;
export type Figure = (typeof FIGURES)[number];

/**
 * One cell: medians of its rounds in the Measurement fields (`ops` and `errors` summed over the
 * rounds, `serverPeakRssMiB` the highest), each figure's min–max in `spread`, and every round.
 */
export interface ResultRow extends Measurement {
  readonly target: TargetName;
  readonly workload: WorkloadName;
  readonly concurrency: number;
  readonly spread: Record<Figure, readonly [number, number]>;
  readonly rounds: readonly Measurement[];
}

export interface TargetCheck {
  readonly goal: string;
  readonly value: number;
  readonly threshold: number;
  readonly met: boolean;
}

export interface BenchReport {
  readonly startedAt: string;
  readonly mode: string;
  readonly machine: { readonly cpus: number; readonly node: string; readonly loadAverage: readonly number[] };
  readonly warmupMs: number;
  /** Unmeasured run of each workload on each server before its rounds (V8 tier-up). */
  readonly serverWarmupMs: number;
  readonly durationMs: number;
  readonly rounds: number;
  readonly targets: Partial<Record<TargetName, string>>;
  /** Targets left out, and why (no etcd binary, no --vss-listen, PostgreSQL did not start). */
  readonly skipped: Partial<Record<TargetName, string>>;
  readonly rows: ResultRow[];
  readonly sqliteCeiling: SqliteCeiling[];
  readonly checks: TargetCheck[];
  /** Where a write's server time goes, per configuration (profiled runs of their own). */
  readonly breakdown: BreakdownCell[];
  /** How far a follower stays behind its leader, per write cell of a target with one. */
  readonly followerLag: FollowerLagRow[];
}

/** A figure over the rounds: median and min–max. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/** One server process of a breakdown cell, every figure in µs per operation. */
export interface ProcessCosts {
  /** "tierkv", or "tierkv backup" for the chained instance. */
  readonly role: string;
  /** Event-loop thread time per step (busy time: blocked system calls included). */
  readonly steps: Record<Step, Spread>;
  /** The event-loop thread's busy time (the steps' sum), its CPU time, and the rest of it (blocked in system calls, mostly fsync). */
  readonly busy: Spread;
  readonly mainThreadCpu: Spread;
  readonly offCpu: Spread;
  /** CPU of the process's other threads (V8's GC helpers, libuv's pool, the profiler's own). */
  readonly otherThreadsCpu: Spread;
  readonly processCpu: Spread;
  /** The functions with the most self time over every round (µs per operation), with their step. */
  readonly topFunctions: ReadonlyArray<{ readonly function: string; readonly step: Step; readonly usPerOp: number }>;
}

export interface BreakdownCell {
  readonly target: TargetName;
  readonly workload: WorkloadName;
  readonly concurrency: number;
  readonly rounds: number;
  readonly opsPerSecond: Spread;
  readonly errors: number;
  readonly firstError?: string;
  readonly processes: ProcessCosts[];
}

/** p50 and p99 of one view of a follower's lag (its report, or the actual lag), over the rounds. */
export interface LagSpreads {
  readonly p50Changes: Spread;
  readonly p99Changes: Spread;
  readonly p50Seconds: Spread;
  readonly p99Seconds: Spread;
}

/**
 * A follower's lag in one cell (target × workload × concurrency): each round's p50 and p99 of the
 * lag readings and its catch-up time, as median and min–max over the rounds, and every round.
 */
export interface FollowerLagRow {
  readonly target: TargetName;
  readonly workload: WorkloadName;
  readonly concurrency: number;
  /** As the follower reports it (backup-status, the metrics). */
  readonly reported: LagSpreads;
  /** The leader's count less the follower's, and the age of its first missing change. */
  readonly actual: LagSpreads;
  readonly catchUpMs: Spread;
  /** Readings over every round. */
  readonly samples: number;
  readonly firstError?: string;
  readonly rounds: readonly LagRound[];
}

export function followerLagRow(target: TargetName, workload: WorkloadName, concurrency: number, rounds: readonly LagRound[]): FollowerLagRow {
  const firstError = rounds.find((r) => r.error !== undefined)?.error;
  const spreads = (view: (round: LagRound) => LagFigures): LagSpreads => ({
    p50Changes: spreadOf(rounds.map((r) => view(r).p50Changes)),
    p99Changes: spreadOf(rounds.map((r) => view(r).p99Changes)),
    p50Seconds: spreadOf(rounds.map((r) => view(r).p50Seconds)),
    p99Seconds: spreadOf(rounds.map((r) => view(r).p99Seconds)),
  });
  return {
    target,
    workload,
    concurrency,
    reported: spreads((r) => r.reported),
    actual: spreads((r) => r.actual),
    catchUpMs: spreadOf(rounds.map((r) => r.catchUpMs)),
    samples: rounds.reduce((sum, r) => sum + r.samples, 0),
    ...(firstError !== undefined && { firstError }),
    rounds,
  };
}

function spreadOf(values: readonly number[]): Spread {
  const finite = values.filter(Number.isFinite);
  return finite.length === 0 ? { median: NaN, min: NaN, max: NaN } : { median: median(finite), min: Math.min(...finite), max: Math.max(...finite) };
}

/** A breakdown cell from its rounds' measurements and each process's attribution of the same rounds. */
export function breakdownCell(
  target: TargetName,
  workload: WorkloadName,
  concurrency: number,
  measurements: readonly Measurement[],
  processes: ReadonlyArray<{ readonly role: string; readonly rounds: readonly Attribution[] }>,
): BreakdownCell {
  const perOp = (us: number, round: number): number => us / measurements[round]!.ops;
  const firstError = measurements.find((m) => m.firstError !== undefined)?.firstError;
  return {
    target,
    workload,
    concurrency,
    rounds: measurements.length,
    opsPerSecond: spreadOf(measurements.map((m) => m.opsPerSecond)),
    errors: measurements.reduce((sum, m) => sum + m.errors, 0),
    ...(firstError !== undefined && { firstError }),
    processes: processes.map(({ role, rounds }, p) => {
      const cpu = (round: number): { cpuUsPerOp: number; mainThreadCpuUsPerOp: number } => measurements[round]!.perServer?.[p] ?? { cpuUsPerOp: NaN, mainThreadCpuUsPerOp: NaN };
      const figure = (of: (a: Attribution, round: number) => number): Spread => spreadOf(rounds.map(of));
      return {
        role,
        steps: Object.fromEntries(STEPS.map((step) => [step, figure((a, r) => perOp(a.steps[step], r))])) as Record<Step, Spread>,
        busy: figure((a, r) => perOp(a.busyUs, r)),
        mainThreadCpu: figure((_, r) => cpu(r).mainThreadCpuUsPerOp),
        offCpu: figure((a, r) => perOp(a.busyUs, r) - cpu(r).mainThreadCpuUsPerOp),
        otherThreadsCpu: figure((_, r) => cpu(r).cpuUsPerOp - cpu(r).mainThreadCpuUsPerOp),
        processCpu: figure((_, r) => cpu(r).cpuUsPerOp),
        topFunctions: topFunctions(rounds, measurements.reduce((sum, m) => sum + m.ops, 0)),
      };
    }),
  };
}

/** The 25 functions with the most self time summed over `rounds`, per operation. */
function topFunctions(rounds: readonly Attribution[], ops: number): ProcessCosts["topFunctions"] {
  const total = new Map<string, { step: Step; us: number }>();
  for (const round of rounds) {
    for (const [name, { step, us }] of round.functions) total.set(name, { step, us: (total.get(name)?.us ?? 0) + us });
  }
  return [...total]
    .sort(([, a], [, b]) => b.us - a.us)
    .slice(0, 25)
    .map(([name, { step, us }]) => ({ function: name, step, usPerOp: Math.round((us / ops) * 10) / 10 }));
}

const BREAKDOWN_COLUMNS: Partial<Record<TargetName, string>> = {
  "tierkv-sqlite": "alone",
  "tierkv-sqlite+sqlite-backup": "SQLite backup",
  "tierkv-sqlite+remote-backup": "chained",
};

/** The breakdown as markdown: per workload, a row per step and a column per server process. */
function breakdownLines(cells: readonly BreakdownCell[]): string[] {
  if (cells.length === 0) return [];
  const out = [
    "## where a write's server time goes (profiled: `node --cpu-prof`, µs per write, median (min–max) over interleaved rounds)",
    "",
    "Event-loop thread time per step, from the samples of each round's measured window; \"blocked\" is that time minus the thread's CPU time " +
      "(/proc), mostly SQLite's fsync inside COMMIT; other threads are V8's GC helpers, libuv's pool and the profiler. " +
      "Primary and backup SQLite of one process share their statement and commit rows; the chained backup is its own process (\"B\").",
    "",
  ];
  const cell = (s: Spread): string => spreadText(s, 0);
  for (const workload of [...new Set(cells.map((c) => c.workload))]) {
    const here = cells.filter((c) => c.workload === workload);
    // The chain's own instance first, then its backup.
    const columns = here.flatMap((c) =>
      [...c.processes]
        .sort((a, b) => Number(a.role !== "tierkv") - Number(b.role !== "tierkv"))
        .map((p) => ({ c, p, title: `${BREAKDOWN_COLUMNS[c.target] ?? c.target}${c.processes.length > 1 ? (p.role === "tierkv" ? ": A" : ": B (backup)") : ""}` })),
    );
    out.push(`### ${workload}, c=${here[0]!.concurrency}`, "");
    out.push(`| step | ${columns.map((col) => col.title).join(" | ")} |`, `|---|${columns.map(() => "---:").join("|")}|`);
    for (const step of STEPS) {
      if (columns.every(({ p }) => !(p.steps[step].median >= 0.5))) continue;
      out.push(`| ${step} | ${columns.map(({ p }) => cell(p.steps[step])).join(" | ")} |`);
    }
    const row = (title: string, of: (p: ProcessCosts) => Spread): void => void out.push(`| ${title} | ${columns.map(({ p }) => cell(of(p))).join(" | ")} |`);
    row("**event-loop thread, busy**", (p) => p.busy);
    row("of which blocked (not CPU)", (p) => p.offCpu);
    row("event-loop thread CPU", (p) => p.mainThreadCpu);
    row("other threads' CPU", (p) => p.otherThreadsCpu);
    row("**process CPU**", (p) => p.processCpu);
    out.push(`| ops/s | ${columns.map(({ c }) => cell(c.opsPerSecond)).join(" | ")} |`);
    out.push(`| errors | ${columns.map(({ c }) => String(c.errors)).join(" | ")} |`, "");
    out.push("Most self time (µs per write, all rounds; the full list of 25 is in the JSON):", "");
    for (const { p, title } of columns) {
      out.push(`- ${title}: ${p.topFunctions.slice(0, 6).map((f) => `${f.function} (${f.step}) ${fixed(f.usPerOp, 1)}`).join("; ")}`);
    }
    out.push("");
  }
  return out;
}

export function median(values: readonly number[]): number {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return NaN;
  const mid = finite.length >> 1;
  return finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
}

/** A row from the rounds of one cell. */
export function aggregate(target: TargetName, workload: WorkloadName, concurrency: number, rounds: readonly Measurement[]): ResultRow {
  const medians = {} as Record<Figure, number>;
  const spread = {} as Record<Figure, readonly [number, number]>;
  for (const figure of FIGURES) {
    const values = rounds.map((r) => r[figure]).filter(Number.isFinite);
    medians[figure] = median(values);
    spread[figure] = values.length === 0 ? [NaN, NaN] : [Math.min(...values), Math.max(...values)];
  }
  const firstError = rounds.find((r) => r.firstError !== undefined)?.firstError;
  return {
    target,
    workload,
    concurrency,
    ...medians,
    ops: rounds.reduce((sum, r) => sum + r.ops, 0),
    errors: rounds.reduce((sum, r) => sum + r.errors, 0),
    ...(firstError !== undefined && { firstError }),
    serverPeakRssMiB: Math.max(0, ...rounds.map((r) => r.serverPeakRssMiB)),
    spread,
    rounds,
  };
}

const find = (rows: readonly ResultRow[], target: TargetName, workload: WorkloadName, concurrency: number): ResultRow | undefined =>
  rows.find((r) => r.target === target && r.workload === workload && r.concurrency === concurrency);

/** The performance goals (issue 20's), as ratios of medians from this one run. */
export function checkTargets(rows: readonly ResultRow[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const ratio = (goal: string, a: number | undefined, b: number | undefined, threshold: number, higherIsBetter = true): void => {
    if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return;
    const value = a / b;
    checks.push({ goal, value, threshold, met: higherIsBetter ? value >= threshold : value <= threshold });
  };
  const ops = (t: TargetName, w: WorkloadName, c: number): number | undefined => find(rows, t, w, c)?.opsPerSecond;
  for (const [workload, threshold] of [["write-1k", 0.85], ["write-64k", 0.8], ["read-1k", 0.95]] as const) {
    ratio(`${workload} c=64: tierkv / independent gRPC ceiling (raw)`, ops("tierkv-sqlite", workload, 64), ops("grpc-ceiling-raw", workload, 64), threshold);
  }
  ratio("write-1k c=1: tierkv p50 / etcd p50 (lower is better)", find(rows, "tierkv-sqlite", "write-1k", 1)?.p50Ms, find(rows, "etcd", "write-1k", 1)?.p50Ms, 1, false);
  for (const workload of ["write-1k", "write-64k", "read-1k", "ldk-mix", "txn-1k"] as const) {
    for (const c of [1, 16, 64]) {
      ratio(
        `${workload} c=${c}: server CPU per op, tierkv / etcd (lower is better)`,
        find(rows, "tierkv-sqlite", workload, c)?.serverCpuUsPerOp,
        find(rows, "etcd", workload, c)?.serverCpuUsPerOp,
        1,
        false,
      );
    }
  }
  for (const workload of ["write-1k", "write-64k"] as const) {
    ratio(`${workload} c=64: with SQLite backup / without`, ops("tierkv-sqlite+sqlite-backup", workload, 64), ops("tierkv-sqlite", workload, 64), 0.9);
    ratio(`${workload} c=64: with chained tierkv backup / without`, ops("tierkv-sqlite+remote-backup", workload, 64), ops("tierkv-sqlite", workload, 64), 0.7);
  }
  ratio("write-1k c=64: with 100 idle watchers / without", ops("tierkv-sqlite+100-watchers", "write-1k", 64), ops("tierkv-sqlite", "write-1k", 64), 0.9);
  for (const workload of ["write-1k", "read-1k"] as const) {
    ratio(`${workload} c=64: VSS over HTTP / gRPC`, ops("tierkv-vss", workload, 64), ops("tierkv-sqlite", workload, 64), 0.8);
    ratio(`${workload} c=64: tierkv PostgreSQL backend / bare pg`, ops("tierkv-postgres", workload, 64), ops("pg-bare", workload, 64), 0.8);
  }
  return checks;
}

const fixed = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : "–");

/** `median (min–max)`, or the median alone with one round. */
function withSpread(row: ResultRow, figure: Figure, digits: number): string {
  const [low, high] = row.spread[figure];
  if (row.rounds.length < 2 || !Number.isFinite(low)) return fixed(row[figure], digits);
  return `${fixed(row[figure], digits)} (${fixed(low, digits)}–${fixed(high, digits)})`;
}

/** Ratios of medians between rows that answer one question each (new paths against their reference). */
interface Comparison {
  readonly title: string;
  readonly subject: TargetName;
  readonly subjectWorkload?: WorkloadName;
  readonly reference: TargetName;
  readonly referenceWorkload?: WorkloadName;
}

const COMPARISONS: readonly Comparison[] = [
  { title: "glue: tierkv's service glue and codec (grpc-ceiling) / raw grpc-js (grpc-ceiling-raw)", subject: "grpc-ceiling", reference: "grpc-ceiling-raw" },
  { title: "Txn (conditional increment) / Write, same target", subject: "tierkv-sqlite", subjectWorkload: "txn-1k", reference: "tierkv-sqlite", referenceWorkload: "write-1k" },
  { title: "Txn / Write on PostgreSQL", subject: "tierkv-postgres", subjectWorkload: "txn-1k", reference: "tierkv-postgres", referenceWorkload: "write-1k" },
  { title: "etcd Txn / etcd Put", subject: "etcd", subjectWorkload: "txn-1k", reference: "etcd", referenceWorkload: "write-1k" },
  { title: "VSS over HTTP / gRPC (same store)", subject: "tierkv-vss", reference: "tierkv-sqlite" },
  { title: "Connect over HTTP / gRPC (same store)", subject: "tierkv-connect", reference: "tierkv-sqlite" },
  { title: "tierkv PostgreSQL backend / bare pg", subject: "tierkv-postgres", reference: "pg-bare" },
  { title: "two tierkv instances on one PostgreSQL / bare pg", subject: "tierkv-postgres-x2", reference: "pg-bare" },
  { title: "two tierkv instances / one, on PostgreSQL", subject: "tierkv-postgres-x2", reference: "tierkv-postgres" },
  { title: "tierkv on PostgreSQL / tierkv on SQLite", subject: "tierkv-postgres", reference: "tierkv-sqlite" },
  { title: "a SQLite leader with a follower / without", subject: "tierkv-sqlite+follower", reference: "tierkv-sqlite" },
];

/** `median (min–max)`, or the median alone when the rounds agree to the digits shown. */
function spreadText(s: Spread, digits: number): string {
  const [median, min, max] = [s.median, s.min, s.max].map((n) => fixed(n, digits));
  return min === max ? median! : `${median} (${min}–${max})`;
}

/** The follower-lag section: a row per write cell of a target with a follower. */
function followerLagLines(lag: readonly FollowerLagRow[], rows: readonly ResultRow[]): string[] {
  if (lag.length === 0) return [];
  const out = [
    `## follower lag (read every ${LAG_SAMPLE_MS} ms over each measured window; median (min–max) over the rounds)`,
    "",
    "Per round: p50 and p99 (nearest rank) of the readings inside the window, then the rounds' median and range. " +
      "**Reported**: the follower's backup-status (`lagChanges`, `lagSeconds`; the metrics `tierkv_follower_lag_changes` and `_seconds` say the same): " +
      "the pending count of the leader's last progress message (sent at most once a second while it is busy) less the changes received since, " +
      "plus those received and not yet applied, so it falls to 0 between progress messages whatever the backlog. " +
      "**Actual**: the leader's count of committed changes less the follower's count applied, read together, and the age of the first change " +
      `the follower lacks (its commit time placed between two readings' leader counts). Catch-up: from the last write's answer until the follower ` +
      `has applied every change the leader committed (read every ${CATCH_UP_POLL_MS} ms). CPU per write: each process alone (the table's server CPU is their sum).`,
    "",
    "| target | workload | c | leader writes/s | reported p50 / p99 changes | reported p50 / p99 s | actual p50 / p99 changes | actual p50 / p99 s | catch-up ms | readings | CPU µs/write leader / follower |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  const pair = (a: Spread, b: Spread, digits: number): string => `${spreadText(a, digits)} / ${spreadText(b, digits)}`;
  for (const cell of lag) {
    const row = find(rows, cell.target, cell.workload, cell.concurrency);
    const cpu = (process: number): string => fixed(median(row?.rounds.map((r) => r.perServer?.[process]?.cpuUsPerOp ?? NaN) ?? []), 0);
    const { reported, actual } = cell;
    out.push(
      `| ${cell.target} | ${cell.workload} | ${cell.concurrency} | ${row === undefined ? "–" : withSpread(row, "opsPerSecond", 0)} | ` +
        `${pair(reported.p50Changes, reported.p99Changes, 0)} | ${pair(reported.p50Seconds, reported.p99Seconds, 2)} | ` +
        `${pair(actual.p50Changes, actual.p99Changes, 0)} | ${pair(actual.p50Seconds, actual.p99Seconds, 2)} | ` +
        `${spreadText(cell.catchUpMs, 0)} | ${cell.samples} | ${cpu(0)} / ${cpu(1)} |`,
    );
  }
  out.push("");
  const failed = lag.filter((cell) => cell.firstError !== undefined);
  if (failed.length > 0) out.push(...failed.map((cell) => `- ${cell.target} ${cell.workload} c=${cell.concurrency}: ${cell.firstError}`), "");
  return out;
}

function comparisonLines(rows: readonly ResultRow[]): string[] {
  const out: string[] = [];
  for (const comparison of COMPARISONS) {
    const lines: string[] = [];
    for (const row of rows) {
      if (row.target !== comparison.subject) continue;
      if (comparison.subjectWorkload !== undefined && row.workload !== comparison.subjectWorkload) continue;
      const reference = find(rows, comparison.reference, comparison.referenceWorkload ?? row.workload, row.concurrency);
      if (reference === undefined) continue;
      const what = comparison.subjectWorkload === undefined ? row.workload : `${row.workload} / ${reference.workload}`;
      lines.push(
        `| ${what} | ${row.concurrency} | ${fixed(row.opsPerSecond / reference.opsPerSecond)} | ${fixed(row.serverCpuUsPerOp, 0)} / ${fixed(reference.serverCpuUsPerOp, 0)} | ${fixed(row.p50Ms, 3)} / ${fixed(reference.p50Ms, 3)} |`,
      );
    }
    if (lines.length === 0) continue;
    out.push(`### ${comparison.title}`, "", "| workload | c | ops/s ratio | server CPU µs/op | p50 ms |", "|---|---:|---:|---:|---:|", ...lines, "");
  }
  return out;
}

export function markdown(report: BenchReport): string {
  const out: string[] = [];
  out.push(`# tierkv benchmark (${report.mode}, ${report.startedAt})`, "");
  out.push(
    `${report.machine.cpus} CPUs, Node ${report.machine.node}, load average ${report.machine.loadAverage.map((n) => n.toFixed(2)).join(" ")} at the start; ` +
      `each server warmed ${report.serverWarmupMs} ms per workload at c=16 (unmeasured), then per cell warm-up ${report.warmupMs} ms, measured ${report.durationMs} ms per cell, ${report.rounds} interleaved round${report.rounds === 1 ? "" : "s"} ` +
      "(targets alternate within a round). Figures: median (min–max over the rounds); ratios compare medians of this one run. " +
      "Server CPU includes every server process (PostgreSQL's backends for the PostgreSQL targets).",
    "",
  );
  const skipped = Object.entries(report.skipped);
  if (skipped.length > 0) out.push(`Skipped: ${skipped.map(([t, why]) => `${t} (${why})`).join("; ")}.`, "");
  const workloads = [...new Set(report.rows.map((r) => r.workload))];
  for (const workload of workloads) {
    out.push(`## ${workload}`, "");
    out.push("| target | c | server CPU µs/op | ops/s | × raw ceiling | × ceiling | × etcd | p50 ms | p99 ms | p99.9 ms | load-gen CPU µs/op | server peak RSS MiB | errors |");
    out.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (const row of report.rows.filter((r) => r.workload === workload)) {
      const versus = (t: TargetName): string => fixed(row.opsPerSecond / (find(report.rows, t, workload, row.concurrency)?.opsPerSecond ?? NaN));
      out.push(
        `| ${row.target} | ${row.concurrency} | ${withSpread(row, "serverCpuUsPerOp", 0)} | ${withSpread(row, "opsPerSecond", 0)} | ${versus("grpc-ceiling-raw")} | ${versus("grpc-ceiling")} | ${versus("etcd")} | ` +
          `${withSpread(row, "p50Ms", 3)} | ${withSpread(row, "p99Ms", 3)} | ${fixed(row.p999Ms, 3)} | ${fixed(row.clientCpuUsPerOp, 0)} | ${fixed(row.serverPeakRssMiB, 0)} | ${row.errors} |`,
      );
    }
    out.push("");
  }
  const comparisons = comparisonLines(report.rows);
  if (comparisons.length > 0) out.push("## comparisons (medians; CPU and p50 as subject / reference)", "", ...comparisons);
  out.push(...followerLagLines(report.followerLag, report.rows));
  if (report.sqliteCeiling.length > 0) {
    out.push("## in-process better-sqlite3 ceiling (no RPC; WAL, synchronous=FULL)", "", "| case | ops/s |", "|---|---:|");
    for (const c of report.sqliteCeiling) out.push(`| ${c.case} | ${fixed(c.opsPerSecond, 0)} |`);
    out.push("");
  }
  out.push(...breakdownLines(report.breakdown));
  if (report.checks.length > 0) {
    out.push("## goals", "", "| goal | measured | goal | met |", "|---|---:|---:|---|");
    for (const check of report.checks) out.push(`| ${check.goal} | ${fixed(check.value)} | ${check.threshold} | ${check.met ? "yes" : "**no**"} |`);
    out.push("");
  }
  const targets = Object.entries(report.targets);
  if (targets.length > 0) {
    out.push("## targets", "");
    for (const [name, description] of targets) out.push(`- **${name}**: ${description}`);
    out.push("");
  }
  return out.join("\n");
}

const COLOURS: Record<TargetName, string> = {
  "tierkv-sqlite": "#1f77b4",
  "tierkv-sqlite+sqlite-backup": "#2ca02c",
  "tierkv-sqlite+remote-backup": "#9467bd",
  "tierkv-sqlite+100-watchers": "#aec7e8",
  "tierkv-sqlite+follower": "#98df8a",
  "tierkv-vss": "#17becf",
  "tierkv-connect": "#c5b0d5",
  "tierkv-postgres": "#ff7f0e",
  "tierkv-postgres-x2": "#8c564b",
  "pg-bare": "#e377c2",
  etcd: "#d62728",
  "grpc-ceiling": "#7f7f7f",
  "grpc-ceiling-raw": "#bcbd22",
};

/** Small multiples: per workload, median throughput and p99 latency against concurrency, one line per target. */
export function svgChart(report: BenchReport): string {
  const workloads = [...new Set(report.rows.map((r) => r.workload))];
  const levels = [...new Set(report.rows.map((r) => r.concurrency))].sort((a, b) => a - b);
  const targets = [...new Set(report.rows.map((r) => r.target))];
  const [panelW, panelH, pad] = [300, 190, 45];
  const width = 2 * (panelW + pad) + pad;
  const height = workloads.length * (panelH + pad) + pad + 30 + targets.length * 16;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
  ];
  const panel = (x0: number, y0: number, title: string, value: (r: ResultRow) => number): void => {
    const rows = report.rows.filter((r) => Number.isFinite(value(r)));
    const max = Math.max(1e-9, ...rows.map(value)) * 1.1;
    const px = (c: number): number => x0 + (levels.length === 1 ? panelW / 2 : (levels.indexOf(c) / (levels.length - 1)) * panelW);
    const py = (v: number): number => y0 + panelH - (v / max) * panelH;
    parts.push(`<text x="${x0}" y="${y0 - 8}" font-weight="bold">${title}</text>`);
    parts.push(`<rect x="${x0}" y="${y0}" width="${panelW}" height="${panelH}" fill="none" stroke="#ccc"/>`);
    for (const c of levels) parts.push(`<text x="${px(c)}" y="${y0 + panelH + 14}" text-anchor="middle">c=${c}</text>`);
    parts.push(`<text x="${x0 - 4}" y="${y0 + 10}" text-anchor="end">${max < 10 ? max.toFixed(2) : Math.round(max)}</text>`);
    parts.push(`<text x="${x0 - 4}" y="${y0 + panelH}" text-anchor="end">0</text>`);
    for (const target of targets) {
      const points = rows.filter((r) => r.target === target).sort((a, b) => a.concurrency - b.concurrency);
      if (points.length === 0) continue;
      const path = points.map((r) => `${px(r.concurrency).toFixed(1)},${py(value(r)).toFixed(1)}`).join(" ");
      parts.push(`<polyline points="${path}" fill="none" stroke="${COLOURS[target]}" stroke-width="2"/>`);
      for (const r of points) parts.push(`<circle cx="${px(r.concurrency)}" cy="${py(value(r))}" r="3" fill="${COLOURS[target]}"/>`);
    }
  };
  workloads.forEach((workload, i) => {
    const y0 = pad + i * (panelH + pad);
    const rowsOf = (r: ResultRow, v: number): number => (r.workload === workload ? v : NaN);
    panel(pad, y0, `${workload}: throughput (ops/s, median)`, (r) => rowsOf(r, r.opsPerSecond));
    panel(2 * pad + panelW, y0, `${workload}: p99 latency (ms, median)`, (r) => rowsOf(r, r.p99Ms));
  });
  const legendY = pad + workloads.length * (panelH + pad);
  targets.forEach((target, i) => {
    const y = legendY + i * 16;
    parts.push(`<rect x="${pad}" y="${y - 9}" width="12" height="10" fill="${COLOURS[target]}"/>`);
    parts.push(`<text x="${pad + 18}" y="${y}">${target}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n");
}
