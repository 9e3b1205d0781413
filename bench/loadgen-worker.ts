//! One load-generator thread: `concurrency` loops of operations against one target over its own
//! channel, from `startAt` to `endAt`; latencies are kept only inside the measured window.

import { parentPort, workerData } from "node:worker_threads";
import { openDriver, type DriverKind } from "./drivers.js";
import { workload, type WorkloadName } from "./workloads.js";

export interface WorkerTask {
  readonly kind: DriverKind;
  readonly address: string;
  readonly workload: WorkloadName;
  readonly keyCount: number;
  readonly concurrency: number;
  /** ms since epoch: measurement starts (after warm-up) and everything stops. */
  readonly measureFrom: number;
  readonly endAt: number;
}

export interface WorkerResult {
  /** Operations completed inside the measured window. */
  readonly ops: number;
  readonly errors: number;
  readonly firstError?: string;
  /** Latency of each measured operation, in microseconds. */
  readonly latenciesUs: Float64Array;
}

async function run(task: WorkerTask): Promise<WorkerResult> {
  const driver = openDriver(task.kind, task.address);
  const operation = workload(task.workload, task.keyCount).operation;
  let latencies = new Float64Array(1 << 16);
  let ops = 0;
  let errors = 0;
  let firstError: string | undefined;
  const loop = async (): Promise<void> => {
    while (Date.now() < task.endAt) {
      const started = performance.now();
      try {
        await operation(driver);
      } catch (error) {
        errors++;
        firstError ??= (error as Error).message;
        continue;
      }
      if (Date.now() < task.measureFrom) continue;
      if (ops === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[ops++] = (performance.now() - started) * 1000;
    }
  };
  await Promise.all(Array.from({ length: task.concurrency }, loop));
  driver.close();
  return { ops, errors, ...(firstError !== undefined && { firstError }), latenciesUs: latencies.slice(0, ops) };
}

run(workerData as WorkerTask).then(
  (result) => parentPort!.postMessage(result, [result.latenciesUs.buffer as ArrayBuffer]),
  (error: unknown) => {
    throw error;
  },
);
