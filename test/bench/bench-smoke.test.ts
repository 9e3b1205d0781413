// The benchmark harness end to end in smoke mode: every target this machine can run produces a
// row for each of its workloads at each concurrency, with no errors, and the JSON, markdown and
// SVG results are written. No timing is asserted.
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import type { BenchReport } from "../../bench/report.js";
import { etcdInstalled, TARGET_INFO, TARGETS, vssAvailable } from "../../bench/targets.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

afterAll(removeTempDirs);

const RUN = fileURLToPath(new URL("../../dist/bench/run.js", import.meta.url));

it("runs every target and workload and writes the results", async () => {
  const out = tempDir();
  const { stdout } = await promisify(execFile)(process.execPath, [RUN, "--smoke", "--out", out], { encoding: "utf8", timeout: 240_000, maxBuffer: 64 * 1024 * 1024 });
  const report = JSON.parse(readFileSync(join(out, "smoke.json"), "utf8")) as BenchReport;

  // Left out only for a reason the machine gives: no etcd binary, no --vss-listen in this tierkv.
  // PostgreSQL is embedded (a dev dependency) and must start.
  const expected = TARGETS.filter((t) => (TARGET_INFO[t].needs !== "etcd" || etcdInstalled()) && (TARGET_INFO[t].needs !== "vss" || vssAvailable()));
  expect(Object.keys(report.skipped).filter((t) => expected.includes(t as (typeof TARGETS)[number])), JSON.stringify(report.skipped)).toEqual([]);
  expect(report.rounds).toBe(1);
  for (const target of expected) {
    for (const workload of TARGET_INFO[target].workloads) {
      const rows = report.rows.filter((r) => r.target === target && r.workload === workload);
      expect(rows.map((r) => r.concurrency), `${target} ${workload}`).toEqual([1, 4]);
      for (const row of rows) {
        expect(row.errors, `${target} ${workload} c=${row.concurrency}: ${row.firstError}`).toBe(0);
        expect(row.ops).toBeGreaterThan(0);
        expect(row.rounds).toHaveLength(1);
        expect(row.spread.opsPerSecond).toHaveLength(2);
        expect(row.serverPeakRssMiB).toBeGreaterThan(0);
        if (TARGET_INFO[target].needs === "postgres") expect(Number.isFinite(row.databaseCpuUsPerOp), `${target}: database CPU`).toBe(true);
      }
    }
  }
  expect(report.sqliteCeiling.length).toBeGreaterThan(0);
  // The profiled cost breakdown: a cell per configuration, each server process attributed, no errors.
  expect(report.breakdown.map((c) => c.target)).toEqual(["tierkv-sqlite", "tierkv-sqlite+sqlite-backup", "tierkv-sqlite+remote-backup"]);
  for (const cell of report.breakdown) {
    expect(cell.errors, `breakdown ${cell.target}: ${cell.firstError}`).toBe(0);
    expect(cell.processes.map((p) => p.role).sort()).toEqual(cell.target === "tierkv-sqlite+remote-backup" ? ["tierkv", "tierkv backup"] : ["tierkv"]);
  }
  // The follower's lag: a row per cell of the target with a follower, read and caught up in every round.
  expect(report.followerLag.map((r) => `${r.target} ${r.workload} c=${r.concurrency}`)).toEqual(["tierkv-sqlite+follower write-1k c=1", "tierkv-sqlite+follower write-1k c=4"]);
  for (const row of report.followerLag) {
    expect(row.firstError, `follower lag c=${row.concurrency}`).toBeUndefined();
    expect(row.rounds).toHaveLength(1);
    expect(row.samples).toBeGreaterThan(0);
    for (const view of [row.reported, row.actual]) {
      for (const figure of [view.p50Changes, view.p99Changes, view.p50Seconds, view.p99Seconds]) expect(Number.isFinite(figure.median)).toBe(true);
    }
    expect(Number.isFinite(row.catchUpMs.median), "caught up after the writers stopped").toBe(true);
  }
  expect(stdout).toContain("## follower lag");
  expect(stdout).toContain("## where a write's server time goes");
  expect(stdout).toContain("| target | c | server CPU µs/op | ops/s |");
  expect(stdout).toContain("## comparisons");
  expect(readFileSync(join(out, "smoke.svg"), "utf8")).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
  expect(existsSync(join(out, "smoke.md"))).toBe(true);
}, 240_000);

it("reports medians and spreads over interleaved rounds", async () => {
  // Two rounds of the two ceilings, one workload: the rows aggregate both rounds.
  const out = tempDir();
  await promisify(execFile)(
    process.execPath,
    [RUN, "--smoke", "--rounds", "2", "--targets", "grpc-ceiling", "grpc-ceiling-raw", "--workloads", "txn-1k", "--out", out],
    { encoding: "utf8", timeout: 120_000 },
  );
  const report = JSON.parse(readFileSync(join(out, "smoke.json"), "utf8")) as BenchReport;
  expect(report.rounds).toBe(2);
  expect(report.rows.map((r) => `${r.target} c=${r.concurrency}`)).toEqual(["grpc-ceiling c=1", "grpc-ceiling c=4", "grpc-ceiling-raw c=1", "grpc-ceiling-raw c=4"]);
  for (const row of report.rows) {
    expect(row.rounds).toHaveLength(2);
    expect(row.errors, row.firstError).toBe(0);
    const [low, high] = row.spread.opsPerSecond;
    expect(low).toBeLessThanOrEqual(row.opsPerSecond);
    expect(high).toBeGreaterThanOrEqual(row.opsPerSecond);
  }
  expect(readFileSync(join(out, "smoke.md"), "utf8")).toMatch(/\d \(\d+–\d+\)/);
}, 120_000);
