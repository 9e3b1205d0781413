//! Turns measurements into the JSON result, a markdown table with ratios, and an SVG chart.
//!
//! Every cell (target × workload × concurrency) is measured in several rounds; a row carries the
//! median of each figure with its spread (min–max over the rounds), and every ratio is computed
//! from medians.

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

/** The issue's performance goals, as ratios of medians from this one run. */
export function checkTargets(rows: readonly ResultRow[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const ratio = (goal: string, a: number | undefined, b: number | undefined, threshold: number, higherIsBetter = true): void => {
    if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return;
    const value = a / b;
    checks.push({ goal, value, threshold, met: higherIsBetter ? value >= threshold : value <= threshold });
  };
  const ops = (t: TargetName, w: WorkloadName, c: number): number | undefined => find(rows, t, w, c)?.opsPerSecond;
  for (const [workload, threshold] of [["write-1k", 0.9], ["write-64k", 0.9], ["read-1k", 0.95]] as const) {
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
  { title: "tierkv PostgreSQL backend / bare pg", subject: "tierkv-postgres", reference: "pg-bare" },
  { title: "two tierkv instances on one PostgreSQL / bare pg", subject: "tierkv-postgres-x2", reference: "pg-bare" },
  { title: "two tierkv instances / one, on PostgreSQL", subject: "tierkv-postgres-x2", reference: "tierkv-postgres" },
  { title: "tierkv on PostgreSQL / tierkv on SQLite", subject: "tierkv-postgres", reference: "tierkv-sqlite" },
];

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
  if (report.sqliteCeiling.length > 0) {
    out.push("## in-process better-sqlite3 ceiling (no RPC; WAL, synchronous=FULL)", "", "| case | ops/s |", "|---|---:|");
    for (const c of report.sqliteCeiling) out.push(`| ${c.case} | ${fixed(c.opsPerSecond, 0)} |`);
    out.push("");
  }
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
  "tierkv-vss": "#17becf",
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
