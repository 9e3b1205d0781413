//! A linearizability checker for tierkv histories (issue 12): a per-key register model searched
//! with the Wing–Gong–Lowe algorithm and memoization, as Knossos and Porcupine do, plus a
//! recorder that turns client calls into history operations.
//!
//! The model of one key is a register: absent, or a value with its revision (contract §3.5:
//! 1 on creation, +1 per applied write, a remove forgets it). Operations:
//! - `read` → the value and revision, or absent;
//! - `write` (unconditional) → `applied` (the value replaces the register, revision + 1) or
//!   `stale` (acknowledged without effect: a no-op, which is what several instances with their
//!   own clocks can answer, contract §3.4);
//! - `remove` → `applied` (absent) or `stale` (no-op);
//! - `txn`: check the revision (or absence), then write → failed check (the check did not hold;
//!   no-op), or succeeded with the write `applied` (at the revision the reply names) or `stale`
//!   (the check held; no-op).
//! An operation whose outcome is unknown (deadline, unavailable) may have taken effect at any
//! point after its invocation, or never.
//!
//! The search works on sets of register states (Porcupine's "power set" for nondeterministic
//! models): an unknown write turns {s} into {s, written(s)}, so one path covers "it happened here"
//! and "it never happened". A history is linearizable when every completed operation can be
//! placed, in an order that respects real time (A before B whenever A returned before B was
//! invoked), with a non-empty set of states after each step. Unknown operations have no return
//! event: they may be placed anywhere after their invocation or left out.

import { writeFileSync } from "node:fs";
import { join } from "node:path";

// ---------------------------------------------------------------------------------------------
// History

/** What a client asked. Values are strings (unique per write, so a read names the write it saw). */
export type OperationInput =
  | { readonly kind: "read" }
  | { readonly kind: "write"; readonly value: string }
  | { readonly kind: "remove" }
  | { readonly kind: "txn"; readonly expect: number | "absent"; readonly value: string };

/** What the server answered (revisions as plain numbers, so a history is plain JSON). */
export type OperationOutput =
  | { readonly kind: "read"; readonly found: false }
  /** `version` is for the reader of a saved history; the model does not use it. */
  | { readonly kind: "read"; readonly found: true; readonly value: string; readonly revision: number; readonly version?: string }
  | { readonly kind: "write" | "remove"; readonly outcome: "applied" | "stale" }
  | { readonly kind: "txn"; readonly succeeded: false }
  | { readonly kind: "txn"; readonly succeeded: true; readonly outcome: "applied" | "stale"; readonly revision: number }
  /** Timed out or unavailable: it may or may not have taken effect. */
  | { readonly kind: "unknown"; readonly error: string };

/** One recorded call: invocation and return times from `performance.now()`. */
export interface HistoryOperation {
  readonly id: number;
  readonly client: number;
  readonly key: string;
  readonly input: OperationInput;
  readonly output: OperationOutput;
  readonly invoke: number;
  /** `null` when the outcome is unknown: the operation may take effect any time after `invoke`. */
  readonly return: number | null;
}

// ---------------------------------------------------------------------------------------------
// The register model

/** The register: absent (`null`), or a value with its revision. */
export type RegisterState = null | { readonly value: string; readonly revision: number };

function stateKey(state: RegisterState): string {
  return state === null ? "-" : `${state.revision}:${state.value}`;
}

function written(state: RegisterState, value: string): { value: string; revision: number } {
  return { value, revision: (state?.revision ?? 0) + 1 };
}

function checkHolds(state: RegisterState, expect: number | "absent"): boolean {
  return expect === "absent" ? state === null : state !== null && state.revision === expect;
}

function sameState(a: RegisterState, b: RegisterState): boolean {
  return a === null || b === null ? a === b : a.value === b.value && a.revision === b.revision;
}

/** The states one operation may leave after `state`, given what it answered ([] = impossible). */
export function step(state: RegisterState, input: OperationInput, output: OperationOutput): RegisterState[] {
  const unknown = output.kind === "unknown";
  switch (input.kind) {
    case "read":
      if (unknown) return [state];
      if (output.kind !== "read") break;
      return sameState(state, output.found ? { value: output.value, revision: output.revision } : null) ? [state] : [];
    case "write":
      if (unknown) return [state, written(state, input.value)];
      if (output.kind !== "write") break;
      return output.outcome === "applied" ? [written(state, input.value)] : [state];
    case "remove":
      if (unknown) return state === null ? [state] : [state, null];
      if (output.kind !== "remove") break;
      return output.outcome === "applied" ? [null] : [state];
    case "txn": {
      const holds = checkHolds(state, input.expect);
      if (unknown) return holds ? [state, written(state, input.value)] : [state];
      if (output.kind !== "txn") break;
      if (!output.succeeded) return holds ? [] : [state];
      if (!holds) return [];
      if (output.outcome === "stale") return [state];
      const next = written(state, input.value);
      return next.revision === output.revision ? [next] : [];
    }
  }
  throw new Error(`operation ${input.kind} answered with a ${output.kind} output`);
}

/** A set of register states, kept sorted by key so equal sets memoize alike. */
class StateSet {
  private constructor(
    readonly states: readonly RegisterState[],
    readonly key: string,
  ) {}

  static of(states: Iterable<RegisterState>): StateSet {
    const byKey = new Map<string, RegisterState>();
    for (const state of states) byKey.set(stateKey(state), state);
    const keys = [...byKey.keys()].sort();
    return new StateSet(
      keys.map((key) => byKey.get(key)!),
      keys.join("\u0000"),
    );
  }

  get empty(): boolean {
    return this.states.length === 0;
  }

  after(op: HistoryOperation): StateSet {
    return StateSet.of(this.states.flatMap((state) => step(state, op.input, op.output)));
  }
}

// ---------------------------------------------------------------------------------------------
// The search (Wing & Gong, Lowe's memoization; Porcupine's `checkSingle`)

interface Entry {
  readonly op: HistoryOperation;
  readonly index: number;
  readonly call: boolean;
  readonly time: number;
  /** The call's return entry (absent for an unknown operation) or the return's call. */
  match: Entry | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

export interface CheckOptions {
  /** Search steps allowed per key before giving up (verdict `unknown`). Default 2,000,000. */
  readonly maxSteps?: number;
}

export interface KeyVerdict {
  readonly key: string;
  readonly operations: number;
  /** `unknown`: the step budget ran out before the search decided. */
  readonly verdict: "linearizable" | "not-linearizable" | "unknown";
  readonly steps: number;
  /** When not linearizable: the longest order found that placed operations consistently... */
  readonly longestPrefix?: readonly number[];
  /** ...the states it left... */
  readonly statesAfterPrefix?: readonly RegisterState[];
  /** ...and the operations that could come next but none of which fit (ids). */
  readonly stuckAt?: readonly number[];
}

export interface CheckResult {
  readonly ok: boolean;
  readonly operations: number;
  readonly keys: readonly KeyVerdict[];
}

/** Checks one key's operations against the register model, starting from an absent key. */
export function checkKey(key: string, ops: readonly HistoryOperation[], options: CheckOptions = {}): KeyVerdict {
  const maxSteps = options.maxSteps ?? 2_000_000;
  // Events in time order; at equal times calls first, so equal stamps count as concurrent.
  const entries: Entry[] = [];
  ops.forEach((op, index) => {
    const call: Entry = { op, index, call: true, time: op.invoke, match: undefined, prev: undefined, next: undefined };
    entries.push(call);
    if (op.return !== null) {
      if (op.return < op.invoke) throw new Error(`operation ${op.id} returns before it is invoked`);
      const ret: Entry = { op, index, call: false, time: op.return, match: call, prev: undefined, next: undefined };
      call.match = ret;
      entries.push(ret);
    }
  });
  entries.sort((a, b) => a.time - b.time || Number(b.call) - Number(a.call) || a.index - b.index);
  const head: Entry = { op: ops[0]!, index: -1, call: false, time: -Infinity, match: undefined, prev: undefined, next: undefined };
  let last = head;
  for (const entry of entries) {
    last.next = entry;
    entry.prev = last;
    last = entry;
  }

  const lift = (entry: Entry): void => {
    entry.prev!.next = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    const ret = entry.match;
    if (ret) {
      ret.prev!.next = ret.next;
      if (ret.next) ret.next.prev = ret.prev;
    }
  };
  const unlift = (entry: Entry): void => {
    const ret = entry.match;
    if (ret) {
      ret.prev!.next = ret;
      if (ret.next) ret.next.prev = ret;
    }
    entry.prev!.next = entry;
    if (entry.next) entry.next.prev = entry;
  };

  const words = new Uint32Array(Math.ceil(ops.length / 32) || 1);
  const flip = (index: number): void => {
    words[index >>> 5]! ^= 1 << (index & 31);
  };
  const cache = new Set<string>();
  const stack: Array<{ entry: Entry; states: StateSet }> = [];
  let states = StateSet.of([null]);
  let completedLeft = ops.filter((op) => op.return !== null).length;
  let steps = 0;
  let best: { prefix: number[]; states: StateSet; stuck: number[] } | undefined;
  const remember = (): void => {
    if (best !== undefined && best.prefix.length >= stack.length) return;
    const stuck: number[] = [];
    // The candidates: every call before the first return still in the list.
    for (let e = head.next; e !== undefined && e.call; e = e.next) stuck.push(e.op.id);
    best = { prefix: stack.map((frame) => frame.entry.op.id), states, stuck };
  };

  let entry = head.next;
  while (completedLeft > 0) {
    if (++steps > maxSteps) return { key, operations: ops.length, verdict: "unknown", steps };
    if (entry !== undefined && entry.call) {
      const next = states.after(entry.op);
      if (!next.empty) {
        flip(entry.index);
        const memo = `${words.join(",")}|${next.key}`;
        if (!cache.has(memo)) {
          cache.add(memo);
          stack.push({ entry, states });
          states = next;
          if (entry.match) completedLeft--;
          lift(entry);
          entry = head.next;
          continue;
        }
        flip(entry.index);
      }
      entry = entry.next;
    } else {
      // A return (or the end of the list): the operation it ends cannot wait any longer.
      remember();
      const frame = stack.pop();
      if (frame === undefined) {
        return {
          key,
          operations: ops.length,
          verdict: "not-linearizable",
          steps,
          longestPrefix: best?.prefix ?? [],
          statesAfterPrefix: best?.states.states ?? [],
          stuckAt: best?.stuck ?? [],
        };
      }
      unlift(frame.entry);
      flip(frame.entry.index);
      if (frame.entry.match) completedLeft++;
      states = frame.states;
      entry = frame.entry.next;
    }
  }
  return { key, operations: ops.length, verdict: "linearizable", steps };
}

/** Partitions the history by key and checks each key on its own (a register per key is local). */
export function checkHistory(history: readonly HistoryOperation[], options: CheckOptions = {}): CheckResult {
  const byKey = new Map<string, HistoryOperation[]>();
  for (const op of history) {
    let ops = byKey.get(op.key);
    if (ops === undefined) byKey.set(op.key, (ops = []));
    ops.push(op);
  }
  const keys = [...byKey.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, ops]) => checkKey(key, ops, options));
  return { ok: keys.every((key) => key.verdict === "linearizable"), operations: history.length, keys };
}

/**
 * Checks `history`; when any key is not linearizable (or undecided within the budget), writes the
 * history and the verdicts to `<dir>/<name>.history.json`, prints that path and throws.
 */
export function assertLinearizable(
  history: readonly HistoryOperation[],
  where: { readonly dir: string; readonly name: string; readonly meta?: Record<string, unknown> },
  options: CheckOptions = {},
): CheckResult {
  const result = checkHistory(history, options);
  if (result.ok) return result;
  const file = join(where.dir, `${where.name.replace(/[^A-Za-z0-9_-]+/g, "-")}.history.json`);
  const bad = result.keys.filter((key) => key.verdict !== "linearizable");
  writeFileSync(file, JSON.stringify({ name: where.name, ...where.meta, verdicts: bad, history }, null, 2));
  console.error(`linearizability: history of "${where.name}" saved to ${file}`);
  const summary = bad
    .map((key) =>
      key.verdict === "unknown"
        ? `key ${key.key}: undecided after ${key.steps} steps (${key.operations} operations)`
        : `key ${key.key}: not linearizable (${key.operations} operations; at most ${key.longestPrefix!.length} placed; ` +
          `then none of operations ${key.stuckAt!.join(", ")} fits states ${JSON.stringify(key.statesAfterPrefix)})`,
    )
    .join("\n");
  throw new Error(`history "${where.name}" is not linearizable (saved to ${file}):\n${summary}`);
}

// ---------------------------------------------------------------------------------------------
// Recording

/** Records operations as clients make them; ids in invocation order. */
export class HistoryRecorder {
  readonly operations: HistoryOperation[] = [];
  private nextId = 0;

  /**
   * Times `run` and records what it answered. `classify` decides what an error means: `unknown`
   * (recorded with an unknown outcome), `drop` (a read that failed: it did nothing), or `throw`.
   */
  async record(
    client: number,
    key: string,
    input: OperationInput,
    run: () => Promise<OperationOutput>,
    classify: (error: unknown) => "unknown" | "drop" | "throw",
  ): Promise<OperationOutput | undefined> {
    const id = this.nextId++;
    const invoke = performance.now();
    try {
      const output = await run();
      this.operations.push({ id, client, key, input, output, invoke, return: performance.now() });
      return output;
    } catch (error) {
      const verdict = classify(error);
      if (verdict === "throw") throw error;
      if (verdict === "unknown") {
        const output: OperationOutput = { kind: "unknown", error: error instanceof Error ? error.message : String(error) };
        this.operations.push({ id, client, key, input, output, invoke, return: null });
        return output;
      }
      return undefined;
    }
  }

  /** The history in invocation order. */
  history(): HistoryOperation[] {
    return [...this.operations].sort((a, b) => a.id - b.id);
  }
}
