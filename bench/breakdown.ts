//! Where a write's server time goes: V8 CPU profiles of the server processes (`node --cpu-prof`),
//! each sample inside a measured window attributed to one step of the write path by its stack.
//!
//! A sample is the event-loop thread's state once per interval: its weight is the time to the
//! next sample. `(idle)` samples (waiting for I/O in the event loop) are left out; everything else
//! is the thread being busy, which includes time blocked in a system call on it (SQLite's fsync
//! inside COMMIT). So the steps add up to the event-loop thread's busy time, and the part of it
//! that was not CPU time (busy minus the thread's CPU from /proc) is reported beside them.
//!
//! Attribution walks each stack from the leaf towards the root. Context frames (a backup call, a
//! ledger statement, the revision read) claim the sample wherever they appear; otherwise the
//! first frame whose file or function has an owner decides. Primary and backup SQLite stores of
//! one process run the same functions, so their statements and commits are one row there; the
//! chained backup is its own process and has its own column.

import { readFileSync } from "node:fs";

export const STEPS = [
  "transport",
  "decode and encode",
  "auth",
  "service glue",
  "validation",
  "lock and clock",
  "tier routing",
  "revision read",
  "SQLite statement",
  "commit",
  "ledger record",
  "ledger settle",
  "backup call",
  "event loop and promises",
  "GC",
  "V8 and native, unattributed",
  "other",
] as const;
export type Step = (typeof STEPS)[number];

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber?: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

/** The `.cpuprofile` format Node writes (Chrome DevTools' Profiler.Profile). */
export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  /** µs on the monotonic clock (the clock of `process.hrtime`). */
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** grpc-js's client side: in a server, only its backup tier's calls to a chained instance use these. */
const GRPC_CLIENT_FILES = new Set([
  "call.js",
  "channel.js",
  "client.js",
  "client-interceptors.js",
  "internal-channel.js",
  "load-balancing-call.js",
  "resolving-call.js",
  "retrying-call.js",
  "subchannel.js",
  "subchannel-call.js",
  "transport.js",
  "call-number.js",
]);

const fileOf = (url: string): string => url.slice(url.lastIndexOf("/") + 1);

/** A frame that claims the whole sample for its step, wherever it sits in the stack. */
function contextOf(frame: CallFrame): Step | undefined {
  const { functionName: name, url } = frame;
  if (url.includes("/dist/src/store/")) {
    if (name === "recordOwed") return "ledger record";
    if (name === "settleOwed" || name === "deleteOwed") return "ledger settle";
    if (name === "readState" || name === "stateOrAbsent") return "revision read";
    return undefined;
  }
  if (url.includes("/dist/src/tier/tier-store.js")) {
    if (name === "inBackup" || name === "mirrorTxn" || name === "mirror") return "backup call";
    if (name === "settle") return "ledger settle";
    return undefined;
  }
  if (url.includes("/dist/src/remote/") || url.includes("/dist/src/client/")) return "backup call";
  if (url.includes("/@grpc/grpc-js/") && GRPC_CLIENT_FILES.has(fileOf(url))) return "backup call";
  return undefined;
}

/** The step a frame's own code belongs to, if it has one. */
function ownerOf(frame: CallFrame): Step | undefined {
  const { functionName: name, url } = frame;
  if (url === "") return undefined; // native: its caller says what it was for
  if (url.includes("/@grpc/grpc-js/") || url.startsWith("node:internal/http2") || url === "node:net" || url.startsWith("node:internal/stream_base")) return "transport";
  if (url.startsWith("node:internal/streams") || url === "node:stream" || url.startsWith("node:internal/net")) return "transport";
  if (url.includes("/@bufbuild/protobuf/") || url.includes("/dist/gen/") || url.includes("/dist/src/service/body.js")) return "decode and encode";
  if (url.includes("/dist/src/auth/")) return "auth";
  if (url.includes("/dist/src/store/validate.js")) return "validation";
  if (url.includes("/dist/src/tier/versioned-lock.js") || url.includes("/dist/src/tier/hybrid-clock.js")) return "lock and clock";
  if (url.includes("/dist/src/tier/")) return "tier routing";
  if (url.includes("/dist/src/store/sqlite.js")) return name === "commit" ? "commit" : "SQLite statement";
  if (url.includes("/better-sqlite3/lib/methods/transaction.js")) return "commit";
  if (url.includes("/better-sqlite3/") || url.includes("/dist/src/store/")) return "SQLite statement";
  if (url.includes("/dist/src/") || url.includes("/@opentelemetry/") || url.includes("/pino") || url.includes("/prom-client/")) return "service glue";
  if (url.startsWith("node:internal/process/task_queues") || url.startsWith("node:internal/timers") || url === "node:timers" || url.startsWith("node:internal/async_hooks")) {
    return "event loop and promises";
  }
  return undefined;
}

/** The step of one sample, from its stack (leaf first). */
export function classify(stack: readonly CallFrame[]): Step {
  const leaf = stack[0];
  if (leaf?.functionName === "(garbage collector)") return "GC";
  if (leaf?.functionName === "(program)") return "V8 and native, unattributed";
  let owner: Step | undefined;
  for (const frame of stack) {
    const context = contextOf(frame);
    if (context !== undefined) return context;
    owner ??= ownerOf(frame);
  }
  return owner ?? (leaf?.functionName === "(root)" ? "V8 and native, unattributed" : "other");
}

/** Event-loop thread time per step within the windows, in µs; plus the busy and idle totals. */
export interface Attribution {
  readonly steps: Record<Step, number>;
  readonly busyUs: number;
  readonly idleUs: number;
  /** Self time per function (a native one named with its JS caller), in µs, with its step. */
  readonly functions: Map<string, { readonly step: Step; us: number }>;
}

/** A sample's function: the leaf, or for a native leaf (a SQLite call, a write to a socket) its JS caller too. */
function functionOf(stack: readonly CallFrame[]): string {
  const named = (frame: CallFrame): string => `${frame.functionName || "(anonymous)"} ${fileOf(frame.url)}:${(frame.lineNumber ?? 0) + 1}`;
  const leaf = stack[0]!;
  if (leaf.url !== "" || leaf.functionName.startsWith("(")) return named(leaf);
  const caller = stack.find((frame) => frame.url !== "");
  return `${leaf.functionName} [native]${caller === undefined ? "" : ` ← ${named(caller)}`}`;
}

/** Attributes every sample of `profile` taken inside one of `windows` ([from, to] µs, monotonic). */
export function attribute(profile: CpuProfile, windows: ReadonlyArray<readonly [number, number]>): Attribution[] {
  const parent = new Map<number, number>();
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  // One classification per node: many samples share one.
  const stepOf = new Map<number, { step: Step | "idle"; fn: string }>();
  const stepOfNode = (id: number): { step: Step | "idle"; fn: string } => {
    let known = stepOf.get(id);
    if (known === undefined) {
      const stack: CallFrame[] = [];
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) stack.push(byId.get(at)!.callFrame);
      known = { step: stack[0]?.functionName === "(idle)" ? "idle" : classify(stack), fn: functionOf(stack) };
      stepOf.set(id, known);
    }
    return known;
  };
  const results = windows.map(() => ({
    steps: Object.fromEntries(STEPS.map((s) => [s, 0])) as Record<Step, number>,
    busyUs: 0,
    idleUs: 0,
    functions: new Map<string, { step: Step; us: number }>(),
  }));
  let at = profile.startTime;
  const times = profile.timeDeltas.map((delta) => (at += delta));
  for (let i = 0; i < profile.samples.length - 1; i++) {
    const t = times[i]!;
    const weight = times[i + 1]! - t;
    const w = windows.findIndex(([from, to]) => t >= from && t < to);
    if (w < 0) continue;
    const { step, fn } = stepOfNode(profile.samples[i]!);
    const result = results[w]!;
    if (step === "idle") result.idleUs += weight;
    else {
      result.steps[step] += weight;
      result.busyUs += weight;
      const entry = result.functions.get(fn);
      if (entry === undefined) result.functions.set(fn, { step, us: weight });
      else entry.us += weight;
    }
  }
  return results;
}

export function readProfile(path: string): CpuProfile {
  return JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
}
