//! Turns measurements into the JSON result, a markdown table with ratios, and an SVG chart.

import type { Measurement } from "./loadgen.js";
import type { SqliteCeiling } from "./sqlite-ceiling.js";
import type { TargetName } from "./targets.js";
import type { WorkloadName } from "./workloads.js";

export interface ResultRow extends Measurement {
  readonly target: TargetName;
  readonly workload: WorkloadName;
  readonly concurrency: number;
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
  readonly machine: { readonly cpus: number; readonly node: string };
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly rows: ResultRow[];
  readonly sqliteCeiling: SqliteCeiling[];
  readonly checks: TargetCheck[];
}

const find = (rows: ResultRow[], target: TargetName, workload: WorkloadName, concurrency: number): ResultRow | undefined =>
  rows.find((r) => r.target === target && r.workload === workload && r.concurrency === concurrency);

/** The performance goals, as ratios from this one run. */
export function checkTargets(rows: ResultRow[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const ratio = (goal: string, a: number | undefined, b: number | undefined, threshold: number, higherIsBetter = true): void => {
    if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return;
    const value = a / b;
    checks.push({ goal, value, threshold, met: higherIsBetter ? value >= threshold : value <= threshold });
  };
  const ops = (t: TargetName, w: WorkloadName, c: number): number | undefined => find(rows, t, w, c)?.opsPerSecond;
  ratio("write 1 KiB c=64: tierkv / gRPC ceiling", ops("tierkv-sqlite", "write-1k", 64), ops("grpc-ceiling", "write-1k", 64), 0.9);
  ratio("write 64 KiB c=64: tierkv / gRPC ceiling", ops("tierkv-sqlite", "write-64k", 64), ops("grpc-ceiling", "write-64k", 64), 0.9);
  ratio("read 1 KiB c=64: tierkv / gRPC ceiling", ops("tierkv-sqlite", "read-1k", 64), ops("grpc-ceiling", "read-1k", 64), 0.95);
  ratio("write 1 KiB c=1: tierkv p50 / etcd p50 (lower is better)", find(rows, "tierkv-sqlite", "write-1k", 1)?.p50Ms, find(rows, "etcd", "write-1k", 1)?.p50Ms, 1, false);
  for (const workload of ["write-1k", "write-64k", "read-1k", "ldk-mix"] as const) {
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
    ratio(`${workload} c=64: with sqlite backup / without`, ops("tierkv-sqlite+sqlite-backup", workload, 64), ops("tierkv-sqlite", workload, 64), 0.8);
    ratio(`${workload} c=64: with remote backup / without`, ops("tierkv-sqlite+remote-backup", workload, 64), ops("tierkv-sqlite", workload, 64), 0.5);
  }
  return checks;
}

const fixed = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : "–");

export function markdown(report: BenchReport): string {
  const out: string[] = [];
  out.push(`# tierkv benchmark (${report.mode}, ${report.startedAt})`, "");
  out.push(`${report.machine.cpus} CPUs, Node ${report.machine.node}; warm-up ${report.warmupMs} ms, measured ${report.durationMs} ms per cell. Ratios compare cells of this one run.`, "");
  const workloads = [...new Set(report.rows.map((r) => r.workload))];
  for (const workload of workloads) {
    out.push(`## ${workload}`, "");
    out.push("| target | c | ops/s | × ceiling | × etcd | p50 ms | p99 ms | p99.9 ms | server CPU µs/op | load-gen CPU µs/op | server peak RSS MiB | errors |");
    out.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (const row of report.rows.filter((r) => r.workload === workload)) {
      const ceiling = find(report.rows, "grpc-ceiling", workload, row.concurrency)?.opsPerSecond ?? NaN;
      const etcd = find(report.rows, "etcd", workload, row.concurrency)?.opsPerSecond ?? NaN;
      out.push(
        `| ${row.target} | ${row.concurrency} | ${fixed(row.opsPerSecond, 0)} | ${fixed(row.opsPerSecond / ceiling)} | ${fixed(row.opsPerSecond / etcd)} | ${fixed(row.p50Ms, 3)} | ${fixed(row.p99Ms, 3)} | ${fixed(row.p999Ms, 3)} | ${fixed(row.serverCpuUsPerOp, 1)} | ${fixed(row.clientCpuUsPerOp, 1)} | ${fixed(row.serverPeakRssMiB, 0)} | ${row.errors} |`,
      );
    }
    out.push("");
  }
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
  return out.join("\n");
}

const COLOURS: Record<TargetName, string> = {
  "tierkv-sqlite": "#1f77b4",
  "tierkv-sqlite+sqlite-backup": "#2ca02c",
  "tierkv-sqlite+remote-backup": "#9467bd",
  etcd: "#d62728",
  "grpc-ceiling": "#7f7f7f",
};

/** Small multiples: per workload, throughput and p99 latency against concurrency, one line per target. */
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
    panel(pad, y0, `${workload}: throughput (ops/s)`, (r) => rowsOf(r, r.opsPerSecond));
    panel(2 * pad + panelW, y0, `${workload}: p99 latency (ms)`, (r) => rowsOf(r, r.p99Ms));
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
