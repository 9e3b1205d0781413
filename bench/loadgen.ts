//! Runs one measurement: load-generator threads (kept for the whole run) against a target, with
//! the target's server CPU time and peak memory read from /proc over the measured window.

import { Worker } from "node:worker_threads";
import type { DriverKind } from "./drivers.js";
import type { FromWorker, ToWorker, WorkerResult, WorkerTask } from "./loadgen-worker.js";
import { cpuSeconds, mainThreadCpuSeconds, peakRssBytes, treeCpuSeconds } from "./proc-stats.js";
import type { WorkloadName } from "./workloads.js";

export interface LoadSpec {
  readonly kind: DriverKind;
  /** Where the load goes; the loops are spread over several addresses (two instances) in turn. */
  readonly addresses: readonly string[];
  /** Server processes whose CPU and memory count for this target. */
  readonly serverPids: readonly number[];
  /** A database server's root process: it and its children (PostgreSQL's backends) count too. */
  readonly databasePid?: number;
  readonly workload: WorkloadName;
  readonly keyCount: number;
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Each loop measures at least this many operations (smoke mode; 0 otherwise). */
  readonly minOpsPerLoop?: number;
  /**
   * Called once every thread is connected and the clock is set: what samples something beside
   * the load (a follower's lag) learns the measured window from it, before the window opens.
   */
  readonly onClock?: (window: LoadWindow) => void;
}

/** The measured window, in ms since epoch (the load generator's threads' clock). */
export interface LoadWindow {
  readonly measureFrom: number;
  readonly endAt: number;
}

export interface Measurement {
  readonly opsPerSecond: number;
  readonly ops: number;
  readonly errors: number;
  readonly firstError?: string;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  /** Server CPU time (user + system, every server process, the database's included) per operation, in microseconds. */
  readonly serverCpuUsPerOp: number;
  /** Of which the database server's (PostgreSQL targets), in microseconds; NaN without one. */
  readonly databaseCpuUsPerOp: number;
  /** The load generator's own CPU time (all its threads) per operation, in microseconds. */
  readonly clientCpuUsPerOp: number;
  readonly serverPeakRssMiB: number;
  /** The measured window on the monotonic clock (`process.hrtime`, as CPU profiles), in µs. */
  readonly windowUs?: readonly [number, number];
  /** Per server process (in `serverPids` order): its CPU and its main thread's, µs per operation. */
  readonly perServer?: ReadonlyArray<{ readonly cpuUsPerOp: number; readonly mainThreadCpuUsPerOp: number }>;
  /** When the last loop stopped, its last operation answered (ms since epoch): the load is over. */
  readonly loadEndedAt?: number;
}

/**
 * Load-generator threads: two when there are enough loops to share, so a single client thread's
 * event loop is never what limits the figures (the ceiling targets show the generator's reach).
 */
export const LOADGEN_THREADS = 2;

/** How long threads get to connect and set up their loops. */
const READY_TIMEOUT_MS = 120_000;

const workerUrl = new URL("./loadgen-worker.js", import.meta.url);

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! / 1000;
}

const sleepUntil = (at: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));

/** A worker thread and the one reply it is waiting for. */
class LoadThread {
  private readonly worker = new Worker(workerUrl);
  private waiting: { resolve: (message: FromWorker) => void; reject: (error: Error) => void } | undefined;
  private dead: Error | undefined;

  constructor() {
    this.worker.unref();
    this.worker.on("message", (message: FromWorker) => {
      const waiting = this.waiting;
      this.waiting = undefined;
      if (message.type === "failed") waiting?.reject(new Error(`load generator: ${message.error}`));
      else waiting?.resolve(message);
    });
    const die = (error: Error): void => {
      this.dead = error;
      this.waiting?.reject(error);
      this.waiting = undefined;
    };
    this.worker.on("error", die);
    this.worker.on("exit", (code) => die(new Error(`load generator thread exited (${code})`)));
  }

  /** Sends `message` and resolves with the thread's reply. */
  ask(message: ToWorker, timeoutMs?: number): Promise<FromWorker> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => reject(new Error(`load generator: no answer in ${timeoutMs} ms`)), timeoutMs);
      this.waiting = {
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.worker.postMessage(message);
    });
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

/** The load generator: its threads start once and serve every measurement of the run. */
export class LoadGenerator {
  private threads: LoadThread[] = [];

  private thread(i: number): LoadThread {
    this.threads[i] ??= new LoadThread();
    return this.threads[i]!;
  }

  async measure(spec: LoadSpec): Promise<Measurement> {
    const threads = Math.min(LOADGEN_THREADS, spec.concurrency);
    let offset = 0;
    const used = Array.from({ length: threads }, (_, t) => {
      // Spread loops over threads; the first takes any remainder.
      const concurrency = Math.floor(spec.concurrency / threads) + (t === 0 ? spec.concurrency % threads : 0);
      const task: WorkerTask = { kind: spec.kind, addresses: spec.addresses, workload: spec.workload, keyCount: spec.keyCount, concurrency, loopOffset: offset };
      offset += concurrency;
      return { thread: this.thread(t), task };
    });
    try {
      await Promise.all(used.map(({ thread, task }) => thread.ask({ type: "task", task }, READY_TIMEOUT_MS)));
    } catch (error) {
      // A thread that failed to set up left the others connected: start afresh next time.
      await this.close();
      throw error;
    }
    // Every thread is connected and set up: the clock starts now.
    const measureFrom = Date.now() + spec.warmupMs;
    const endAt = measureFrom + spec.durationMs;
    const minOpsPerLoop = spec.minOpsPerLoop ?? 0;
    const hardEndAt = endAt + (minOpsPerLoop > 0 ? 30_000 : 0);
    spec.onClock?.({ measureFrom, endAt });
    const results = Promise.all(used.map(({ thread }) => thread.ask({ type: "go", go: { measureFrom, endAt, minOpsPerLoop, hardEndAt } })));
    const sample = (): { server: number; database: number; client: number; atUs: number; perServer: Array<[number, number]> } => {
      const database = spec.databasePid === undefined ? 0 : treeCpuSeconds(spec.databasePid);
      const perServer = spec.serverPids.map((pid): [number, number] => [cpuSeconds(pid), mainThreadCpuSeconds(pid)]);
      return {
        server: perServer.reduce((sum, [cpu]) => sum + cpu, 0) + database,
        database,
        client: cpuSeconds(process.pid),
        atUs: Number(process.hrtime.bigint() / 1000n),
        perServer,
      };
    };
    await sleepUntil(measureFrom);
    const before = sample();
    await sleepUntil(endAt);
    let after = sample();
    let windowEnd = endAt;
    const replies = await results.catch(async (error: unknown) => {
      await this.close();
      throw error;
    });
    const done = replies.map((reply) => (reply as { result: WorkerResult }).result);
    const endedAt = Math.max(...done.map((r) => r.endedAt));
    if (endedAt > endAt + 20) {
      // Some loop ran on for its minimum: the window is as long as the longest loop.
      after = sample();
      windowEnd = endedAt;
    }

    const ops = done.reduce((sum, r) => sum + r.ops, 0);
    const latencies = new Float64Array(ops);
    let at = 0;
    for (const r of done) {
      latencies.set(r.latenciesUs, at);
      at += r.latenciesUs.length;
    }
    latencies.sort();
    const firstError = done.find((r) => r.firstError !== undefined)?.firstError;
    const perOp = (seconds: number): number => (ops === 0 ? NaN : (seconds * 1e6) / ops);
    const rssPids = spec.serverPids.length > 0 ? spec.serverPids : spec.databasePid !== undefined ? [spec.databasePid] : [];
    return {
      opsPerSecond: ops / ((windowEnd - measureFrom) / 1000),
      ops,
      errors: done.reduce((sum, r) => sum + r.errors, 0),
      ...(firstError !== undefined && { firstError }),
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
      p999Ms: percentile(latencies, 0.999),
      serverCpuUsPerOp: perOp(after.server - before.server),
      databaseCpuUsPerOp: spec.databasePid === undefined ? NaN : perOp(after.database - before.database),
      clientCpuUsPerOp: perOp(after.client - before.client),
      serverPeakRssMiB: Math.max(0, ...rssPids.map(peakRssBytes)) / (1024 * 1024),
      windowUs: [before.atUs, after.atUs],
      perServer: after.perServer.map(([cpu, main], i) => ({ cpuUsPerOp: perOp(cpu - before.perServer[i]![0]), mainThreadCpuUsPerOp: perOp(main - before.perServer[i]![1]) })),
      loadEndedAt: endedAt,
    };
  }

  async close(): Promise<void> {
    const threads = this.threads;
    this.threads = [];
    await Promise.all(threads.map((thread) => thread.terminate()));
  }
}
