// The linearizability checker on small hand-made histories: linearizable ones are accepted, the
// classic anomalies (a stale read after a completed write, two conditional writes succeeding on
// one revision, a lost update) are rejected; unknown outcomes, stale acknowledgements and the
// step budget behave as documented; a failing history is saved to a file whose path is given.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  assertLinearizable,
  checkHistory,
  checkKey,
  HistoryRecorder,
  step,
  type HistoryOperation,
  type OperationInput,
  type OperationOutput,
  type RegisterState,
} from "./support/linearizability.js";

// Small builders: times are plain numbers; `null` as the return time means "outcome unknown".
let ids = 0;
function op(input: OperationInput, output: OperationOutput, invoke: number, ret: number | null, key = "k"): HistoryOperation {
  return { id: ids++, client: 0, key, input, output, invoke, return: ret };
}
const write = (value: string, at: [number, number | null], outcome: "applied" | "stale" = "applied", key?: string) =>
  op({ kind: "write", value }, at[1] === null ? unknown : { kind: "write", outcome }, at[0], at[1], key);
const remove = (at: [number, number | null], outcome: "applied" | "stale" = "applied") =>
  op({ kind: "remove" }, at[1] === null ? unknown : { kind: "remove", outcome }, at[0], at[1]);
const read = (seen: [string, number] | null, at: [number, number], key?: string) =>
  op({ kind: "read" }, seen === null ? { kind: "read", found: false } : { kind: "read", found: true, value: seen[0], revision: seen[1] }, at[0], at[1], key);
/** A conditional write: `result` is the revision it stored, "failed", "stale", or null (unknown). */
const txn = (expect: number | "absent", value: string, result: number | "failed" | "stale" | null, at: [number, number | null]) =>
  op(
    { kind: "txn", expect, value },
    result === null || at[1] === null
      ? unknown
      : result === "failed"
        ? { kind: "txn", succeeded: false }
        : result === "stale"
          ? { kind: "txn", succeeded: true, outcome: "stale", revision: 0 }
          : { kind: "txn", succeeded: true, outcome: "applied", revision: result },
    at[0],
    at[1],
  );
const unknown: OperationOutput = { kind: "unknown", error: "deadline exceeded" };

const verdict = (history: HistoryOperation[]) => checkKey("k", history).verdict;

describe("linearizable histories are accepted", () => {
  it("the empty history", () => {
    expect(checkHistory([])).toEqual({ ok: true, operations: 0, keys: [] });
  });

  it("sequential writes, reads, removes and conditional writes, revisions counting from 1 again after a remove", () => {
    expect(
      verdict([
        read(null, [0, 1]),
        txn("absent", "a", 1, [2, 3]),
        read(["a", 1], [4, 5]),
        write("b", [6, 7]),
        txn(2, "c", 3, [8, 9]),
        txn(2, "d", "failed", [10, 11]),
        read(["c", 3], [12, 13]),
        remove([14, 15]),
        remove([16, 17]), // removing an absent key is applied too
        txn(3, "e", "failed", [18, 19]),
        write("f", [20, 21]),
        txn(1, "g", 2, [22, 23]),
        read(["g", 2], [24, 25]),
      ]),
    ).toBe("linearizable");
  });

  it("reads overlapping a write may see either value, and the order among them decides", () => {
    // The write takes effect between the two reads.
    expect(verdict([write("a", [0, 1]), write("b", [2, 20]), read(["a", 1], [3, 4]), read(["b", 2], [5, 6]), read(["b", 2], [21, 22])])).toBe(
      "linearizable",
    );
    // Two concurrent writes: a later read fixes their order.
    expect(verdict([write("a", [0, 10]), write("b", [1, 9]), read(["a", 2], [11, 12])])).toBe("linearizable");
    expect(verdict([write("a", [0, 10]), write("b", [1, 9]), read(["b", 2], [11, 12])])).toBe("linearizable");
  });

  it("two concurrent conditional writes on one revision: one succeeds, the other fails its check", () => {
    expect(
      verdict([write("a", [0, 1]), txn(1, "b", 2, [2, 6]), txn(1, "c", "failed", [3, 5]), read(["b", 2], [7, 8])]),
    ).toBe("linearizable");
    // ... and the one that fails may have returned first, the winner being linearized before it.
    expect(verdict([write("a", [0, 1]), txn(1, "b", "failed", [2, 4]), txn(1, "c", 2, [3, 9]), read(["c", 2], [10, 11])])).toBe(
      "linearizable",
    );
  });

  it("an unknown write may take effect after its invocation, even long after, or never", () => {
    expect(verdict([write("a", [0, null]), read(null, [1, 2]), read(["a", 1], [50, 51])])).toBe("linearizable");
    expect(verdict([write("a", [0, null]), read(null, [1, 2]), read(null, [50, 51])])).toBe("linearizable");
    expect(verdict([write("x", [0, 1]), remove([2, null]), read(["x", 1], [3, 4]), read(null, [5, 6])])).toBe("linearizable");
    expect(verdict([write("x", [0, 1]), txn(1, "y", null, [2, null]), read(["x", 1], [3, 4]), read(["y", 2], [5, 6])])).toBe(
      "linearizable",
    );
  });

  it("a stale write (or a succeeded txn whose write was stale) changes nothing", () => {
    expect(verdict([write("a", [0, 1]), write("b", [2, 3], "stale"), read(["a", 1], [4, 5])])).toBe("linearizable");
    expect(verdict([write("a", [0, 1]), remove([2, 3], "stale"), read(["a", 1], [4, 5])])).toBe("linearizable");
    expect(verdict([write("a", [0, 1]), txn(1, "b", "stale", [2, 3]), read(["a", 1], [4, 5])])).toBe("linearizable");
  });

  it("keys are checked apart", () => {
    const result = checkHistory([write("a", [0, 1], "applied", "k1"), write("b", [2, 3], "applied", "k2"), read(["a", 1], [4, 5], "k1"), read(["b", 1], [4, 5], "k2")]);
    expect(result.ok).toBe(true);
    expect(result.keys.map((key) => [key.key, key.operations])).toEqual([["k1", 2], ["k2", 2]]);
  });
});

describe("classic anomalies are rejected", () => {
  it("a stale read after a completed write", () => {
    expect(verdict([write("a", [0, 1]), write("b", [2, 3]), read(["a", 1], [4, 5])])).toBe("not-linearizable");
    // ... after a completed remove
    expect(verdict([write("a", [0, 1]), remove([2, 3]), read(["a", 1], [4, 5])])).toBe("not-linearizable");
    // ... and a read that goes back in time after another read saw the new value
    expect(verdict([write("a", [0, 1]), write("b", [2, 20]), read(["b", 2], [3, 4]), read(["a", 1], [5, 6])])).toBe("not-linearizable");
  });

  it("two conditional writes succeeding on the same revision", () => {
    expect(verdict([write("a", [0, 1]), txn(1, "b", 2, [2, 6]), txn(1, "c", 2, [3, 5])])).toBe("not-linearizable");
    expect(verdict([txn("absent", "b", 1, [2, 6]), txn("absent", "c", 1, [3, 5])])).toBe("not-linearizable");
  });

  it("a lost update: two acknowledged writes, but the revision moved by one", () => {
    expect(verdict([write("a", [0, 1]), write("b", [2, 10]), write("c", [3, 9]), read(["c", 2], [11, 12])])).toBe("not-linearizable");
    // ... or a conditional write that succeeded on a state an acknowledged write had replaced
    expect(verdict([write("a", [0, 1]), write("b", [2, 3]), txn(1, "c", 2, [4, 5])])).toBe("not-linearizable");
  });

  it("a failed check that should have held, a value never written, a read before its write was invoked", () => {
    expect(verdict([write("a", [0, 1]), txn(1, "b", "failed", [2, 3])])).toBe("not-linearizable");
    expect(verdict([write("a", [0, 1]), read(["z", 1], [2, 3])])).toBe("not-linearizable");
    expect(verdict([read(["a", 1], [0, 1]), write("a", [2, 3])])).toBe("not-linearizable");
    // an unknown write cannot take effect before its invocation either
    expect(verdict([read(["a", 1], [0, 1]), write("a", [2, null])])).toBe("not-linearizable");
    // a txn that names a revision other than the one it must have stored
    expect(verdict([write("a", [0, 1]), txn(1, "b", 5, [2, 3])])).toBe("not-linearizable");
  });

  it("the verdict names the longest consistent order and the operations that could not follow it", () => {
    const history = [write("a", [0, 1]), write("b", [2, 3]), read(["a", 1], [4, 5])];
    const result = checkKey("k", history);
    expect(result.longestPrefix).toEqual([history[0]!.id, history[1]!.id]);
    expect(result.statesAfterPrefix).toEqual([{ value: "b", revision: 2 }]);
    expect(result.stuckAt).toEqual([history[2]!.id]);
  });
});

describe("search and reporting", () => {
  const dir = mkdtempSync(join(tmpdir(), "tierkv-linearizability-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("gives up with `unknown` when the step budget runs out", () => {
    const history = Array.from({ length: 12 }, (_, i) => write(`v${i}`, [0, 100]));
    history.push(read(["v0", 12], [101, 102]));
    expect(checkKey("k", history, { maxSteps: 10 }).verdict).toBe("unknown");
    expect(checkKey("k", history).verdict).toBe("linearizable");
  });

  it("decides a long concurrent history generated from a sequential register quickly", () => {
    // Each operation takes effect at a random point of its interval; outputs follow from that order.
    let seed = 12345;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let state = null as { value: string; revision: number } | null;
    const history: HistoryOperation[] = [];
    for (let i = 0; i < 400; i++) {
      const at = i * 10;
      const span: [number, number] = [at - random() * 25, at + random() * 25];
      const dice = random();
      if (dice < 0.35) history.push(read(state === null ? null : [state.value, state.revision], span));
      else if (dice < 0.6) {
        state = { value: `w${i}`, revision: (state?.revision ?? 0) + 1 };
        history.push(write(`w${i}`, random() < 0.1 ? [span[0], null] : span));
      } else if (dice < 0.7) {
        state = null;
        history.push(remove(span));
      } else {
        const expect = random() < 0.5 ? (state?.revision ?? "absent") : 7;
        const holds = expect === "absent" ? state === null : state !== null && state.revision === expect;
        if (holds) state = { value: `t${i}`, revision: (state?.revision ?? 0) + 1 };
        history.push(txn(expect, `t${i}`, holds ? state!.revision : "failed", span));
      }
    }
    const started = performance.now();
    const result = checkKey("k", history);
    expect(result.verdict).toBe("linearizable");
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it("agrees with a brute-force search over every order on 3,000 small random histories", () => {
    let seed = 777;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pick = <T,>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const values = ["a", "b", "c"];
    const randomOp = (): HistoryOperation => {
      const invoke = Math.floor(random() * 10);
      const ret = random() < 0.15 ? null : invoke + Math.floor(random() * 5);
      const seen = (): OperationOutput =>
        random() < 0.3 ? { kind: "read", found: false } : { kind: "read", found: true, value: pick(values), revision: 1 + Math.floor(random() * 3) };
      const kind = pick(["read", "write", "remove", "txn"] as const);
      const input: OperationInput =
        kind === "read" || kind === "remove" ? { kind } : kind === "write" ? { kind, value: pick(values) } : { kind, expect: pick(["absent", 1, 2] as const), value: pick(values) };
      const output: OperationOutput =
        ret === null
          ? unknown
          : kind === "read"
            ? seen()
            : kind === "txn"
              ? random() < 0.4
                ? { kind, succeeded: false }
                : { kind, succeeded: true, outcome: random() < 0.9 ? "applied" : "stale", revision: 1 + Math.floor(random() * 3) }
              : { kind, outcome: random() < 0.9 ? "applied" : "stale" };
      return op(input, output, invoke, ret);
    };
    // Every order that respects real time, every choice of an unknown operation's effect.
    const bruteForce = (ops: readonly HistoryOperation[]): boolean => {
      const search = (left: readonly HistoryOperation[], state: RegisterState): boolean => {
        if (left.every((o) => o.return === null)) return true;
        return left.some((next) => {
          if (left.some((o) => o.return !== null && o.return < next.invoke)) return false;
          const rest = left.filter((o) => o !== next);
          return step(state, next.input, next.output).some((after) => search(rest, after));
        });
      };
      return search(ops, null);
    };
    const verdicts = { linearizable: 0, "not-linearizable": 0, unknown: 0 };
    for (let i = 0; i < 3_000; i++) {
      const history = Array.from({ length: 2 + Math.floor(random() * 5) }, randomOp);
      const result = checkKey("k", history).verdict;
      verdicts[result]++;
      expect({ history, result }).toEqual({ history, result: bruteForce(history) ? "linearizable" : "not-linearizable" });
    }
    // Both verdicts are well represented (the outputs are random, so most histories fail).
    expect(verdicts.linearizable).toBeGreaterThan(300);
    expect(verdicts["not-linearizable"]).toBeGreaterThan(300);
  });

  it("assertLinearizable saves a failing history as JSON and names the file", () => {
    const history = [write("a", [0, 1]), write("b", [2, 3]), read(["a", 1], [4, 5])];
    expect(assertLinearizable(history.slice(0, 2), { dir, name: "fine" }).ok).toBe(true);
    expect(existsSync(join(dir, "fine.history.json"))).toBe(false);
    let message = "";
    try {
      assertLinearizable(history, { dir, name: "stale read", meta: { seed: 1 } });
    } catch (error) {
      message = (error as Error).message;
    }
    const file = join(dir, "stale-read.history.json");
    expect(message).toContain(file);
    expect(message).toContain("key k: not linearizable");
    const saved = JSON.parse(readFileSync(file, "utf8")) as { seed: number; history: unknown[]; verdicts: Array<{ key: string }> };
    expect(saved.seed).toBe(1);
    expect(saved.history).toHaveLength(3);
    expect(saved.verdicts.map((v) => v.key)).toEqual(["k"]);
  });

  it("the recorder keeps answers, turns chosen errors into unknown outcomes and drops others", async () => {
    const recorder = new HistoryRecorder();
    await recorder.record(1, "k", { kind: "write", value: "a" }, async () => ({ kind: "write", outcome: "applied" }), () => "throw");
    await recorder.record(2, "k", { kind: "write", value: "b" }, () => Promise.reject(new Error("timeout")), () => "unknown");
    await recorder.record(3, "k", { kind: "read" }, () => Promise.reject(new Error("unavailable")), () => "drop");
    await expect(recorder.record(4, "k", { kind: "read" }, () => Promise.reject(new Error("bug")), () => "throw")).rejects.toThrow("bug");
    const history = recorder.history();
    expect(history.map((o) => [o.client, o.output.kind, o.return === null])).toEqual([
      [1, "write", false],
      [2, "unknown", true],
    ]);
    expect(history[0]!.return!).toBeGreaterThanOrEqual(history[0]!.invoke);
  });
});
