//! `npm run bench`: every workload at every concurrency against every target, side by side in one
//! run with one load generator; JSON, a markdown table and an SVG chart in bench/results/.
//!
//!   npm run bench                 full run (about 6 minutes)
//!   npm run bench -- --quick      short cells (under 2 minutes)
//!   npm run bench -- --smoke      tiny cells, for CI: proves the harness works, asserts nothing about speed
//!   npm run bench -- --soak 600   ten minutes of the LDK mix against tierkv, RSS sampled throughout

import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, Option } from "commander";
import { openDriver } from "./drivers.js";
import { measure } from "./loadgen.js";
import { residentBytes } from "./proc-stats.js";
import { checkTargets, markdown, svgChart, type BenchReport, type ResultRow } from "./report.js";
import { measureSqliteCeiling } from "./sqlite-ceiling.js";
import { etcdInstalled, startTarget, TARGETS, type TargetName } from "./targets.js";
import { DEFAULT_KEY_COUNT, workload, WORKLOADS, type WorkloadName } from "./workloads.js";

interface Mode {
  readonly name: string;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly concurrency: number[];
  readonly keyCount: number;
}

const MODES: Record<"full" | "quick" | "smoke", Mode> = {
  full: { name: "full", warmupMs: 1000, durationMs: 5000, concurrency: [1, 16, 64], keyCount: DEFAULT_KEY_COUNT },
  quick: { name: "quick", warmupMs: 150, durationMs: 650, concurrency: [1, 16, 64], keyCount: DEFAULT_KEY_COUNT },
  smoke: { name: "smoke", warmupMs: 50, durationMs: 150, concurrency: [1, 4], keyCount: 200 },
};

const defaultOut = fileURLToPath(new URL("../../bench/results", import.meta.url));

const program = new Command("bench")
  .option("--quick", "short cells: the whole run in under 2 minutes")
  .option("--smoke", "tiny cells and few keys: checks the harness (CI), not the speed")
  .option("--soak <seconds>", "run the LDK mix against tierkv for this long, sampling server RSS")
  .addOption(new Option("--targets <names...>", "targets to run").choices([...TARGETS]))
  .addOption(new Option("--workloads <names...>", "workloads to run").choices([...WORKLOADS]))
  .option("--out <dir>", "where results go", defaultOut)
  .parse();
const options = program.opts<{ quick?: boolean; smoke?: boolean; soak?: string; targets?: TargetName[]; workloads?: WorkloadName[]; out: string }>();

async function benchmark(mode: Mode): Promise<BenchReport> {
  let targets = options.targets ?? [...TARGETS];
  if (targets.includes("etcd") && !etcdInstalled()) {
    process.stderr.write("etcd is not installed (Debian: apt-get install etcd-server): skipping it\n");
    targets = targets.filter((t) => t !== "etcd");
  }
  const workloads = options.workloads ?? [...WORKLOADS];
  const rows: ResultRow[] = [];
  for (const target of targets) {
    for (const name of workloads) {
      // A fresh server per workload: earlier workloads' data and WAL do not weigh on later ones.
      const running = await startTarget(target);
      try {
        const driver = openDriver(running.kind, running.address);
        await workload(name, mode.keyCount).prepare(driver);
        driver.close();
        for (const concurrency of mode.concurrency) {
          const result = await measure({
            kind: running.kind,
            address: running.address,
            serverPids: running.pids,
            workload: name,
            keyCount: mode.keyCount,
            concurrency,
            warmupMs: mode.warmupMs,
            durationMs: mode.durationMs,
          });
          rows.push({ target, workload: name, concurrency, ...result });
          process.stderr.write(
            `${target.padEnd(28)} ${name.padEnd(9)} c=${String(concurrency).padEnd(3)} ${result.opsPerSecond.toFixed(0).padStart(7)} ops/s  p99 ${result.p99Ms.toFixed(2)} ms  cpu ${result.serverCpuUsPerOp.toFixed(0)} µs/op  errors ${result.errors}\n`,
          );
        }
      } finally {
        await running.stop();
      }
    }
  }
  return {
    startedAt: new Date().toISOString(),
    mode: mode.name,
    machine: { cpus: availableParallelism(), node: process.version },
    warmupMs: mode.warmupMs,
    durationMs: mode.durationMs,
    rows,
    sqliteCeiling: measureSqliteCeiling(mode.name === "smoke" ? 100 : 1000),
    checks: checkTargets(rows),
  };
}

/** Chunks of load back to back for `seconds`, server RSS sampled after each. */
async function soak(seconds: number): Promise<void> {
  const running = await startTarget("tierkv-sqlite");
  const samples: Array<{ atSeconds: number; rssMiB: number; anonymousMiB: number; fileMiB: number; opsPerSecond: number; errors: number }> = [];
  try {
    const driver = openDriver(running.kind, running.address);
    await workload("ldk-mix").prepare(driver);
    driver.close();
    const started = Date.now();
    while (Date.now() - started < seconds * 1000) {
      const chunk = await measure({
        kind: running.kind,
        address: running.address,
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
      process.stderr.write(
        `soak ${sample.atSeconds}s: ${sample.opsPerSecond.toFixed(0)} ops/s, RSS ${sample.rssMiB.toFixed(1)} MiB ` +
          `(anonymous ${sample.anonymousMiB.toFixed(1)}, file-backed ${sample.fileMiB.toFixed(1)}), errors ${sample.errors}\n`,
      );
    }
  } finally {
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
} else {
  const mode = options.smoke ? MODES.smoke : options.quick ? MODES.quick : MODES.full;
  const report = await benchmark(mode);
  mkdirSync(options.out, { recursive: true });
  writeFileSync(join(options.out, `${mode.name}.json`), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(options.out, `${mode.name}.md`), `${markdown(report)}\n`);
  writeFileSync(join(options.out, `${mode.name}.svg`), `${svgChart(report)}\n`);
  process.stdout.write(`${markdown(report)}\n`);
  process.stderr.write(`results: ${join(options.out, mode.name)}.{json,md,svg}\n`);
}
