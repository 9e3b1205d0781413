//! Runs one measurement: worker threads of load against a target, with the target's server CPU
//! time and peak memory read from /proc over the measured window.

import { Worker } from "node:worker_threads";
import type { DriverKind } from "./drivers.js";
import type { WorkerResult, WorkerTask } from "./loadgen-worker.js";
import { cpuSeconds, peakRssBytes } from "./proc-stats.js";
import type { WorkloadName } from "./workloads.js";

export interface LoadSpec {
  readonly kind: DriverKind;
  readonly address: string;
  /** Server processes whose CPU and memory count for this target. */
  readonly serverPids: readonly number[];
  readonly workload: WorkloadName;
  readonly keyCount: number;
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

export interface Measurement {
  readonly opsPerSecond: number;
  readonly ops: number;
  readonly errors: number;
  readonly firstError?: string;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  /** Server CPU time (user + system, all server processes) per operation, in microseconds. */
  readonly serverCpuUsPerOp: number;
  /** The load generator's own CPU time (all its threads) per operation, in microseconds. */
  readonly clientCpuUsPerOp: number;
  readonly serverPeakRssMiB: number;
}

/**
 * Load-generator threads: two when there are enough loops to share, so a single client thread's
 * event loop is never what limits the figures (the ceiling target shows the generator's reach).
 */
export const LOADGEN_THREADS = 2;

const workerUrl = new URL("./loadgen-worker.js", import.meta.url);

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! / 1000;
}

export async function measure(spec: LoadSpec): Promise<Measurement> {
  const threads = spec.concurrency >= LOADGEN_THREADS ? LOADGEN_THREADS : 1;
  // Workers need a moment to start and connect: the clock starts after that.
  const startAt = Date.now() + 300;
  const measureFrom = startAt + spec.warmupMs;
  const endAt = measureFrom + spec.durationMs;
  const results = Promise.all(
    Array.from({ length: threads }, (_, t) => {
      const task: WorkerTask = {
        kind: spec.kind,
        address: spec.address,
        workload: spec.workload,
        keyCount: spec.keyCount,
        // Spread loops over threads; the first takes any remainder.
        concurrency: Math.floor(spec.concurrency / threads) + (t === 0 ? spec.concurrency % threads : 0),
        measureFrom,
        endAt,
      };
      return new Promise<WorkerResult>((resolve, reject) => {
        const worker = new Worker(workerUrl, { workerData: task });
        worker.once("message", resolve);
        worker.once("error", reject);
      });
    }),
  );
  await new Promise((resolve) => setTimeout(resolve, measureFrom - Date.now()));
  const cpuBefore = spec.serverPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const clientBefore = cpuSeconds(process.pid);
  await new Promise((resolve) => setTimeout(resolve, endAt - Date.now()));
  const cpuAfter = spec.serverPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const clientAfter = cpuSeconds(process.pid);
  const done = await results;

  const ops = done.reduce((sum, r) => sum + r.ops, 0);
  const latencies = new Float64Array(ops);
  let offset = 0;
  for (const r of done) {
    latencies.set(r.latenciesUs, offset);
    offset += r.latenciesUs.length;
  }
  latencies.sort();
  const firstError = done.find((r) => r.firstError !== undefined)?.firstError;
  return {
    opsPerSecond: ops / (spec.durationMs / 1000),
    ops,
    errors: done.reduce((sum, r) => sum + r.errors, 0),
    ...(firstError !== undefined && { firstError }),
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    p999Ms: percentile(latencies, 0.999),
    serverCpuUsPerOp: ops === 0 ? NaN : ((cpuAfter - cpuBefore) * 1e6) / ops,
    clientCpuUsPerOp: ops === 0 ? NaN : ((clientAfter - clientBefore) * 1e6) / ops,
    serverPeakRssMiB: Math.max(...spec.serverPids.map(peakRssBytes)) / (1024 * 1024),
  };
}
