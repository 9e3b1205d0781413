//! One load-generator thread, kept for the whole run. Per measurement: open its channels and set
//! up its loops, say "ready", wait for "go" (the clock starts only once every thread is
//! connected), run `concurrency` loops until `endAt`, keep latencies inside the measured window
//! only, and answer with the result.

import { parentPort } from "node:worker_threads";
import { openDriver, type Driver, type DriverKind } from "./drivers.js";
import { workload, type WorkloadName } from "./workloads.js";

export interface WorkerTask {
  readonly kind: DriverKind;
  /** Loop `i` (counted over every thread) talks to `addresses[i % addresses.length]`. */
  readonly addresses: readonly string[];
  readonly workload: WorkloadName;
  readonly keyCount: number;
  readonly concurrency: number;
  /** The first loop's index over every thread. */
  readonly loopOffset: number;
}

export interface WorkerGo {
  /** ms since epoch: measurement starts (after warm-up) and everything stops. */
  readonly measureFrom: number;
  readonly endAt: number;
  /**
   * Each loop keeps going after `endAt` until it has this many measured operations (at most
   * until `hardEndAt`): tiny smoke cells on a loaded machine still measure something.
   */
  readonly minOpsPerLoop: number;
  readonly hardEndAt: number;
}

export interface WorkerResult {
  /** Operations completed inside the measured window. */
  readonly ops: number;
  readonly errors: number;
  readonly firstError?: string;
  /** Latency of each measured operation, in microseconds. */
  readonly latenciesUs: Float64Array;
  /** When the last loop stopped (ms since epoch): after `endAt` when a loop needed its minimum. */
  readonly endedAt: number;
}

export type ToWorker = { readonly type: "task"; readonly task: WorkerTask } | { readonly type: "go"; readonly go: WorkerGo };
export type FromWorker =
  | { readonly type: "ready" }
  | { readonly type: "result"; readonly result: WorkerResult }
  | { readonly type: "failed"; readonly error: string };

const port = parentPort!;
let drivers: Driver[] = [];
let operations: Array<() => Promise<void>> = [];

async function prepare(task: WorkerTask): Promise<void> {
  const share = Math.ceil(task.concurrency / task.addresses.length);
  drivers = task.addresses.map((address) => openDriver(task.kind, address, { connections: share }));
  // One call per channel before "ready": connections are up before the clock starts.
  await Promise.all(drivers.map((driver) => driver.revision({ primaryNamespace: "bench", secondaryNamespace: "probe", key: "connect" })));
  const load = workload(task.workload, task.keyCount);
  operations = await Promise.all(
    Array.from({ length: task.concurrency }, (_, j) => {
      const index = task.loopOffset + j;
      return load.loop(drivers[index % drivers.length]!, index);
    }),
  );
}

async function run(go: WorkerGo): Promise<WorkerResult> {
  let latencies = new Float64Array(1 << 16);
  let ops = 0;
  let errors = 0;
  let firstError: string | undefined;
  let endedAt = 0;
  const loop = async (operation: () => Promise<void>): Promise<void> => {
    let mine = 0;
    for (;;) {
      const now = Date.now();
      if (now >= go.hardEndAt || (now >= go.endAt && mine >= go.minOpsPerLoop)) break;
      const started = performance.now();
      try {
        await operation();
      } catch (error) {
        errors++;
        firstError ??= (error as Error).message;
        continue;
      }
      if (Date.now() < go.measureFrom) continue;
      if (ops === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[ops++] = (performance.now() - started) * 1000;
      mine++;
    }
    endedAt = Math.max(endedAt, Date.now());
  };
  await Promise.all(operations.map(loop));
  return { ops, errors, ...(firstError !== undefined && { firstError }), latenciesUs: latencies.slice(0, ops), endedAt };
}

function close(): void {
  for (const driver of drivers) driver.close();
  drivers = [];
  operations = [];
}

port.on("message", (message: ToWorker) => {
  if (message.type === "task") {
    prepare(message.task).then(
      () => port.postMessage({ type: "ready" } satisfies FromWorker),
      (error: unknown) => {
        close();
        port.postMessage({ type: "failed", error: String((error as Error)?.stack ?? error) } satisfies FromWorker);
      },
    );
  } else {
    run(message.go).then(
      (result) => {
        close();
        port.postMessage({ type: "result", result } satisfies FromWorker, [result.latenciesUs.buffer as ArrayBuffer]);
      },
      (error: unknown) => {
        close();
        port.postMessage({ type: "failed", error: String((error as Error)?.stack ?? error) } satisfies FromWorker);
      },
    );
  }
});
