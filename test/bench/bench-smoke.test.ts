// The benchmark harness end to end in smoke mode: every target and workload produces a row with
// no errors, and the JSON, markdown and SVG results are written. No timing is asserted.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import type { BenchReport } from "../../bench/report.js";
import { etcdInstalled, TARGETS } from "../../bench/targets.js";
import { WORKLOADS } from "../../bench/workloads.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

afterAll(removeTempDirs);

const RUN = fileURLToPath(new URL("../../dist/bench/run.js", import.meta.url));

it("runs every target and workload and writes the results", () => {
  const out = tempDir();
  const stdout = execFileSync(process.execPath, [RUN, "--smoke", "--out", out], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 240_000 });
  const report = JSON.parse(readFileSync(join(out, "smoke.json"), "utf8")) as BenchReport;

  const targets = TARGETS.filter((t) => t !== "etcd" || etcdInstalled());
  for (const target of targets) {
    for (const workload of WORKLOADS) {
      const rows = report.rows.filter((r) => r.target === target && r.workload === workload);
      expect(rows.map((r) => r.concurrency), `${target} ${workload}`).toEqual([1, 4]);
      for (const row of rows) {
        expect(row.errors, `${target} ${workload} c=${row.concurrency}: ${row.firstError}`).toBe(0);
        expect(row.ops).toBeGreaterThan(0);
        expect(row.serverPeakRssMiB).toBeGreaterThan(0);
      }
    }
  }
  expect(report.sqliteCeiling.length).toBeGreaterThan(0);
  expect(stdout).toContain("| target | c | ops/s |");
  expect(readFileSync(join(out, "smoke.svg"), "utf8")).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
  expect(existsSync(join(out, "smoke.md"))).toBe(true);
});
