// Issue 12, "Malformed input": properties of the code every request goes through, checked with
// fast-check against small reference models.
// - validateKey / validateNamespace accept exactly LDK's alphabet up to 120 characters (and VSS's
//   key rules in vss: stores), and never throw anything but StoreError invalid-argument;
// - page tokens round-trip and are refused in any other namespace or store; the decoders never
//   throw anything but invalid-argument, whatever the string;
// - formatPath / parseKeyPath / parseNamespacePath round-trip for valid references;
// - a ListPage walk of the memory store (and SQLite) returns every key that existed for the whole
//   walk exactly once, whatever writes and removes happen between pages;
// - Txn on the memory store is all-or-nothing against a simple model.
// FC_SEED=<n> replays another run (fast-check prints the seed and the counterexample on failure).

import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { invalidArgument, StoreError } from "../../src/store/errors.js";
import { MemoryStore } from "../../src/store/memory.js";
import { allKeysStart, decodeKeyCursor, decodePageToken, decodeSequenceToken, encodeKeyCursor, encodePageToken } from "../../src/store/page-token.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { KVStore, KeyRef, NamespaceRef, TxnCheck, TxnOperation, TxnRequest } from "../../src/store/types.js";
import { formatPath, MAX_VERSION, parseKeyPath, parseNamespacePath, validateKey, validateNamespace } from "../../src/store/validate.js";

const SEED = process.env["FC_SEED"] === undefined ? 0x12_0c_4b_1e : Number(process.env["FC_SEED"]);
fc.configureGlobal({ seed: SEED, numRuns: 300 });
console.log(`fast-check seed: ${SEED} (replay with FC_SEED=${SEED})`);

afterAll(() => fc.resetConfigureGlobal());

// ---------------------------------------------------------------------------------------------
// Reference model of the naming rules (docs/contract.md §1 and "VSS").

const LDK_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const LDK_NAME = /^[A-Za-z0-9_-]{0,120}$/;

function storeIdValid(storeId: unknown): boolean {
  return typeof storeId === "string" && storeId !== "" && storeId.length <= 256 && !/[\u0000-\u001f\u007f]/.test(storeId);
}

function namespaceValid(ns: { primaryNamespace: unknown; secondaryNamespace: unknown; storeId?: unknown }): boolean {
  const { primaryNamespace: p, secondaryNamespace: s } = ns;
  return storeIdValid(ns.storeId ?? "default") && typeof p === "string" && typeof s === "string" && LDK_NAME.test(p) && LDK_NAME.test(s) && !(p === "" && s !== "");
}

function keyValid(ref: { primaryNamespace: unknown; secondaryNamespace: unknown; key: unknown; storeId?: unknown }): boolean {
  if (!namespaceValid(ref)) return false;
  const { key } = ref;
  if (typeof key !== "string") return false;
  const storeId = (ref.storeId ?? "default") as string;
  if (storeId.startsWith("vss:")) return key !== "" && [...key].length <= 600 && !/[\u0000-\u001f\u007f-\u009f]/.test(key);
  return key !== "" && LDK_NAME.test(key);
}

/** Runs `fn`; returns "ok", or "invalid-argument" for that StoreError, or fails on anything else. */
function outcomeOf(fn: () => unknown): "ok" | "invalid-argument" {
  try {
    fn();
    return "ok";
  } catch (error) {
    if (error instanceof StoreError && error.code === "invalid-argument") return "invalid-argument";
    throw new Error(`threw something other than StoreError invalid-argument: ${String(error)}`, { cause: error });
  }
}

// ---------------------------------------------------------------------------------------------
// Arbitraries.

const ldkChar = fc.constantFrom(...LDK_ALPHABET);
/** A character outside LDK's alphabet, with the usual suspects weighted in. */
const badChar = fc.oneof(
  fc.constantFrom("/", " ", ".", "é", "\u0000", "\n", "\t", "\u007f", "\u0085", "😀", "\ud800", "\udfff", "+", "=", "%", "\\", "*", "\ufeff", "ǅ"),
  fc.string({ unit: "binary", minLength: 1, maxLength: 1 }).filter((c) => !LDK_ALPHABET.includes(c)),
);
/** LDK names around the 120-character limit. */
const ldkName = fc.oneof(
  fc.string({ unit: ldkChar, maxLength: 8 }),
  fc.string({ unit: ldkChar, minLength: 115, maxLength: 125 }),
  fc.constant(""),
);
/** A name: mostly LDK-shaped, sometimes with a bad character spliced in, sometimes any string at all. */
const anyName = fc.oneof(
  { weight: 4, arbitrary: ldkName },
  { weight: 2, arbitrary: fc.tuple(ldkName, badChar, ldkName).map(([a, c, b]) => `${a}${c}${b}`) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 130 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 10 }) },
);
const storeIdArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constantFrom("default", "tenant-a", "vss:u:s", "vss:", "x".repeat(256), "x".repeat(257), "", "a\u0000", "a\u001fb", "a\u007f", "a\u0085b") },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 20 }).map((s) => `vss:${s}`) },
);
/** VSS-shaped keys: any text, around the 600-code-point limit, with control characters sometimes. */
const vssKey = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: "binary", minLength: 595, maxLength: 605 }),
  fc.string({ unit: fc.constantFrom("a", "é", "😀", "\u0085", "\u009f", "\u00a0"), minLength: 598, maxLength: 602 }),
);
const keyRefArb = fc.record({
  storeId: storeIdArb,
  primaryNamespace: anyName,
  secondaryNamespace: anyName,
  key: fc.oneof({ weight: 4, arbitrary: anyName }, { weight: 1, arbitrary: vssKey }),
});

/** A valid reference (store id without control characters, LDK names, empty primary ⇒ empty secondary). */
const validStoreId = fc.oneof(fc.constant(undefined), fc.constantFrom("default", "tenant-a", "tenant-b"), fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 12 }).filter(storeIdValid));
const shortLdk = fc.string({ unit: ldkChar, maxLength: 6 });
const validNamespace = fc
  .record({ storeId: validStoreId, primaryNamespace: shortLdk, secondaryNamespace: shortLdk })
  .map((ns) => (ns.primaryNamespace === "" ? { ...ns, secondaryNamespace: "" } : ns))
  .map(({ storeId, ...rest }) => (storeId === undefined ? rest : { storeId, ...rest }) as NamespaceRef);
const validKeyRef = fc
  .tuple(validNamespace, fc.string({ unit: ldkChar, minLength: 1, maxLength: 120 }))
  .map(([ns, key]): KeyRef => ({ ...ns, key }));

// ---------------------------------------------------------------------------------------------

describe("validateKey and validateNamespace", () => {
  it("accept exactly the LDK alphabet up to 120 characters (VSS's key rules in vss: stores), and throw nothing but invalid-argument", () => {
    fc.assert(
      fc.property(keyRefArb, (ref) => {
        expect(outcomeOf(() => validateKey(ref as KeyRef, "check"))).toBe(keyValid(ref) ? "ok" : "invalid-argument");
        expect(outcomeOf(() => validateNamespace(ref as NamespaceRef, "check"))).toBe(namespaceValid(ref) ? "ok" : "invalid-argument");
      }),
      { numRuns: 3000 },
    );
  });

  it("take any LDK name of 0..120 characters and refuse 121", () => {
    fc.assert(
      fc.property(fc.string({ unit: ldkChar, minLength: 1, maxLength: 121 }), (name) => {
        const expected = name.length <= 120 ? "ok" : "invalid-argument";
        expect(outcomeOf(() => validateKey({ primaryNamespace: name, secondaryNamespace: name, key: name }, "check"))).toBe(expected);
        expect(outcomeOf(() => validateNamespace({ primaryNamespace: name, secondaryNamespace: "", storeId: "tenant" }, "check"))).toBe(expected);
      }),
    );
  });

  it("refuse one bad character anywhere in any part", () => {
    fc.assert(
      fc.property(validKeyRef, badChar, fc.constantFrom("primaryNamespace", "secondaryNamespace", "key"), fc.nat(), (ref, bad, part, at) => {
        const name = ref[part] === "" ? "a" : ref[part];
        const position = at % (name.length + 1);
        const broken = { ...ref, primaryNamespace: ref.primaryNamespace || "p", [part]: `${name.slice(0, position)}${bad}${name.slice(position)}` };
        expect(outcomeOf(() => validateKey(broken, "check"))).toBe("invalid-argument");
      }),
    );
  });

  it("throw nothing but invalid-argument for fields that are not strings at all", () => {
    fc.assert(
      fc.property(fc.record({ storeId: fc.oneof(fc.anything(), fc.constant(undefined)), primaryNamespace: fc.anything(), secondaryNamespace: fc.anything(), key: fc.anything() }), (ref) => {
        expect(outcomeOf(() => validateKey(ref as unknown as KeyRef, "check"))).toBe(keyValid(ref) ? "ok" : "invalid-argument");
        expect(outcomeOf(() => validateNamespace(ref as unknown as NamespaceRef, "check"))).toBe(namespaceValid(ref) ? "ok" : "invalid-argument");
      }),
      { numRuns: 1000 },
    );
  });
});

describe("formatPath, parseKeyPath and parseNamespacePath", () => {
  it("round-trip every valid key reference", () => {
    fc.assert(
      fc.property(validKeyRef, (ref) => {
        const { primaryNamespace, secondaryNamespace, key } = ref;
        expect(parseKeyPath(formatPath(ref))).toEqual({ primaryNamespace, secondaryNamespace, key });
      }),
      { numRuns: 1000 },
    );
  });

  it("round-trip every valid namespace pair", () => {
    fc.assert(
      fc.property(validNamespace, (ns) => {
        expect(parseNamespacePath(formatPath(ns))).toEqual({ primaryNamespace: ns.primaryNamespace, secondaryNamespace: ns.secondaryNamespace });
      }),
    );
  });

  it("parse any string to a valid reference or refuse it with invalid-argument", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary", maxLength: 60 }), fc.array(anyName, { maxLength: 5 }).map((parts) => parts.join("/"))), (path) => {
        let parsed: KeyRef | undefined;
        const outcome = outcomeOf(() => (parsed = parseKeyPath(path)));
        if (outcome === "ok") {
          expect(keyValid(parsed!)).toBe(true);
          // Empty parts are accepted ("a//k" is a/k): the canonical form parses to the same key.
          expect(parseKeyPath(formatPath(parsed!))).toEqual(parsed);
        }
        outcomeOf(() => parseNamespacePath(path));
      }),
      { numRuns: 1000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Page tokens.

const base64urlOf = (value: unknown): string => Buffer.from(typeof value === "string" ? value : JSON.stringify(value) ?? "").toString("base64url");
/** Strings a client might send as a token: anything, base64url of JSON of anything, near-valid bodies. */
const tokenArb = fc.oneof(
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.base64String({ maxLength: 80 }),
  fc.jsonValue().map(base64urlOf),
  fc.record({ f: fc.oneof(fc.constant(1), fc.anything()), n: fc.oneof(fc.string({ maxLength: 12 }), fc.anything()), p: fc.oneof(fc.string(), fc.anything(), fc.bigInt().map(String)) }).map(base64urlOf),
  fc.array(fc.oneof(fc.constant(2), fc.string({ maxLength: 6 }), fc.anything()), { maxLength: 6 }).map(base64urlOf),
  fc.tuple(fc.constant(2), fc.string(), fc.string(), fc.string(), fc.string()).map(base64urlOf),
  fc.string({ unit: "binary", maxLength: 40 }).map(base64urlOf),
);

describe("page tokens", () => {
  it("round-trip: a token of a namespace pair gives back its position", () => {
    fc.assert(
      fc.property(fc.record({ storeId: fc.option(fc.string(), { nil: undefined }), primaryNamespace: fc.string(), secondaryNamespace: fc.string() }), fc.string({ unit: "binary" }), (ns, position) => {
        expect(decodePageToken(ns, encodePageToken(ns, position))).toBe(position);
      }),
      { numRuns: 1000 },
    );
  });

  it("are refused, invalid-argument, in any other namespace pair or store", () => {
    // The other namespace: unrelated, or the same one with one part changed.
    const otherOf = (ns: NamespaceRef) =>
      fc.oneof(
        validNamespace,
        fc.constantFrom("storeId", "primaryNamespace", "secondaryNamespace").chain((part) =>
          (part === "storeId" ? validStoreId : shortLdk).map((value) => ({ ...ns, [part]: value }) as NamespaceRef),
        ),
      );
    const differs = (a: NamespaceRef, b: NamespaceRef): boolean =>
      (a.storeId ?? "default") !== (b.storeId ?? "default") || a.primaryNamespace !== b.primaryNamespace || a.secondaryNamespace !== b.secondaryNamespace;
    fc.assert(
      fc.property(
        validNamespace.chain((ns) => fc.tuple(fc.constant(ns), otherOf(ns))).filter(([a, b]) => differs(a, b)),
        fc.string(),
        ([ns, other], position) => {
          const token = encodePageToken(ns, position);
          expect(outcomeOf(() => decodePageToken(other, token))).toBe("invalid-argument");
          expect(outcomeOf(() => decodeSequenceToken(other, token))).toBe("invalid-argument");
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("decodePageToken, decodeSequenceToken and decodeKeyCursor throw nothing but invalid-argument, whatever the string", () => {
    fc.assert(
      fc.property(tokenArb, validNamespace, (token, ns) => {
        outcomeOf(() => decodePageToken(ns, token));
        outcomeOf(() => decodeKeyCursor(token));
        let sequence: number | undefined;
        if (outcomeOf(() => (sequence = decodeSequenceToken(ns, token))) === "ok") {
          expect(Number.isSafeInteger(sequence) && sequence! >= 0).toBe(true);
        }
        outcomeOf(() => allKeysStart({ storeId: ns.storeId, pageToken: token }));
        outcomeOf(() => allKeysStart({ storeId: ns.storeId, pageToken: token, allStores: true }));
      }),
      { numRuns: 3000 },
    );
  });

  it("sequence tokens: any position of 1..15 digits decodes to its number, anything else is refused", () => {
    fc.assert(
      fc.property(validNamespace, fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 16n }).map(String), fc.string({ maxLength: 17 }), fc.stringMatching(/^[0-9]{14,17}$/)), (ns, position) => {
        const token = encodePageToken(ns, position);
        if (/^[0-9]{1,15}$/.test(position)) expect(decodeSequenceToken(ns, token)).toBe(Number(position));
        else expect(outcomeOf(() => decodeSequenceToken(ns, token))).toBe("invalid-argument");
      }),
    );
  });

  it("ListAllKeys cursors round-trip and are refused in another store unless every store is listed", () => {
    fc.assert(
      fc.property(validKeyRef, validStoreId, (ref, other) => {
        const storeId = ref.storeId ?? "default";
        const cursor = encodeKeyCursor({ ...ref, storeId });
        expect(decodeKeyCursor(cursor)).toEqual({ storeId, primaryNamespace: ref.primaryNamespace, secondaryNamespace: ref.secondaryNamespace, key: ref.key });
        expect(allKeysStart({ storeId, pageToken: cursor })).toEqual(decodeKeyCursor(cursor));
        expect(allKeysStart({ storeId: other, pageToken: cursor, allStores: true })).toEqual(decodeKeyCursor(cursor));
        if ((other ?? "default") !== storeId) expect(outcomeOf(() => allKeysStart({ storeId: other, pageToken: cursor }))).toBe("invalid-argument");
      }),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// ListPage walks under concurrent writes and removes (model-based).

interface WalkPlan {
  /** Keys created before the walk, in creation order. */
  readonly initial: string[];
  /** Which initial keys stay for the whole walk (the others may be removed and re-created). */
  readonly stable: boolean[];
  /** Per page: its size, and the mutations made before it is read. */
  readonly pages: { size: number; between: { op: "write" | "remove" | "rewrite" | "noise"; index: number; fresh: string }[] }[];
}

const walkPlan: fc.Arbitrary<WalkPlan> = fc
  .uniqueArray(fc.string({ unit: ldkChar, minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 30 })
  .chain((initial) =>
    fc.record({
      initial: fc.constant(initial),
      stable: fc.array(fc.boolean(), { minLength: initial.length, maxLength: initial.length }),
      pages: fc.array(
        fc.record({
          size: fc.integer({ min: 1, max: 6 }),
          between: fc.array(
            fc.record({ op: fc.constantFrom("write", "remove", "rewrite", "noise"), index: fc.nat(), fresh: fc.string({ unit: ldkChar, minLength: 5, maxLength: 7 }) }),
            { maxLength: 4 },
          ),
        }),
        { minLength: 40, maxLength: 40 },
      ),
    }),
  );

async function checkWalk(store: KVStore, plan: WalkPlan): Promise<void> {
  const ns: NamespaceRef = { storeId: "walk", primaryNamespace: "ns", secondaryNamespace: "sub" };
  const ref = (key: string): KeyRef => ({ ...ns, key });
  const value = new Uint8Array([1]);
  for (const key of plan.initial) await store.write(ref(key), value);
  const stable = new Set(plan.initial.filter((_, i) => plan.stable[i]));
  const volatile = plan.initial.filter((_, i) => !plan.stable[i]);
  const everExisted = new Set(plan.initial);
  const seen: string[] = [];
  let token = "";
  for (const page of plan.pages) {
    for (const { op, index, fresh } of page.between) {
      if (op === "write") {
        // New keys (5+ characters: never an initial one) created during the walk.
        await store.write(ref(fresh), value);
        everExisted.add(fresh);
        volatile.push(fresh);
      } else if (op === "remove" && volatile.length > 0) {
        await store.remove(ref(volatile[index % volatile.length]!));
      } else if (op === "rewrite") {
        // Overwrite any initial key (a stable key stays), or re-create a removed volatile one.
        const key = plan.initial[index % plan.initial.length]!;
        await store.write(ref(key), new Uint8Array([2]));
      } else if (op === "noise") {
        await store.write({ ...ns, secondaryNamespace: "other", key: fresh }, value);
        await store.write({ ...ns, storeId: "elsewhere", key: fresh }, value);
      }
    }
    const result = await store.listPage(ns, { pageSize: page.size, pageToken: token });
    expect(result.keys.length).toBeLessThanOrEqual(page.size);
    seen.push(...result.keys);
    token = result.nextPageToken;
    if (token === "") break;
  }
  // Finish the walk without further mutations.
  for (let pages = 0; token !== ""; pages++) {
    if (pages > 1000) throw new Error("the walk never ended");
    const result = await store.listPage(ns, { pageSize: 7, pageToken: token });
    seen.push(...result.keys);
    token = result.nextPageToken;
  }
  const counts = new Map<string, number>();
  for (const key of seen) counts.set(key, (counts.get(key) ?? 0) + 1);
  for (const key of stable) expect(counts.get(key), `stable key ${key}`).toBe(1);
  for (const [key, count] of counts) {
    expect(count, `${key} returned ${count} times`).toBe(1);
    expect(everExisted.has(key), `${key} never existed`).toBe(true);
  }
}

describe("a ListPage walk with writes and removes between pages", () => {
  it("returns every key that existed for the whole walk exactly once, and no key twice (memory store)", async () => {
    await fc.assert(
      fc.asyncProperty(walkPlan, async (plan) => {
        const store = new MemoryStore();
        try {
          await checkWalk(store, plan);
        } finally {
          await store.close();
        }
      }),
      { numRuns: 200 },
    );
  });

  it("the same holds for the SQLite store", async () => {
    await fc.assert(
      fc.asyncProperty(walkPlan, async (plan) => {
        const store = new SqliteStore(":memory:");
        try {
          await checkWalk(store, plan);
        } finally {
          await store.close();
        }
      }),
      { numRuns: 60 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Txn against a model.

interface ModelEntry {
  readonly value: string;
  readonly version: bigint;
  readonly revision: bigint;
}

type Model = Map<string, ModelEntry>;

// A small key space, so txns meet each other's keys.
const TXN_STORES = ["default", "t2"];
const TXN_NAMESPACES: [string, string][] = [["", ""], ["a", "b"]];
const TXN_KEYS = ["k1", "k2"];

const idOf = (ref: KeyRef): string => JSON.stringify([ref.storeId ?? "default", ref.primaryNamespace, ref.secondaryNamespace, ref.key]);

/** Keys of the small key space, and now and then an invalid one. */
const txnRef: fc.Arbitrary<KeyRef> = fc.oneof(
  { weight: 12, arbitrary: fc.record({ storeId: fc.constantFrom(...TXN_STORES), ns: fc.constantFrom(...TXN_NAMESPACES), key: fc.constantFrom(...TXN_KEYS) }).map(({ storeId, ns, key }) => ({ storeId, primaryNamespace: ns[0], secondaryNamespace: ns[1], key })) },
  { weight: 1, arbitrary: fc.constantFrom<KeyRef>({ primaryNamespace: "a", secondaryNamespace: "", key: "bad/key" }, { primaryNamespace: "", secondaryNamespace: "b", key: "k1" }, { primaryNamespace: "a", secondaryNamespace: "", key: "" }, { storeId: "", primaryNamespace: "a", secondaryNamespace: "", key: "k1" }) },
);

// Few distinct versions, so stale operations (at or below the stored version) are common.
const versionArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 5, arbitrary: fc.bigInt({ min: 1n, max: 6n }) },
  { weight: 1, arbitrary: fc.constantFrom(0n, -1n, MAX_VERSION, MAX_VERSION + 1n) },
);

const txnCheck: fc.Arbitrary<TxnCheck> = fc.record({
  ref: txnRef,
  expect: fc.oneof(fc.constantFrom<"absent" | "present">("absent", "present"), fc.bigInt({ min: 1n, max: 5n }), fc.constantFrom(0n, -3n, MAX_VERSION + 1n)),
}).map(({ ref, expect }) => ({ ...ref, expect }));

const txnOperation: fc.Arbitrary<TxnOperation> = fc.oneof(
  fc.record({ ref: txnRef, value: fc.string({ maxLength: 3 }), revision: fc.option(fc.bigInt({ min: 1n, max: 9n }), { nil: undefined, freq: 6 }) }).map(
    ({ ref, value, revision }): TxnOperation => ({ ...ref, kind: "write", value: new TextEncoder().encode(value), ...(revision !== undefined && { revision }) }),
  ),
  txnRef.map((ref): TxnOperation => ({ ...ref, kind: "remove" })),
);

const txnRequest: fc.Arbitrary<TxnRequest> = fc.record({
  checks: fc.array(txnCheck, { maxLength: 3 }),
  operations: fc.array(txnOperation, { maxLength: 4 }),
  version: versionArb,
}).map(({ version, ...rest }) => (version === undefined ? rest : { ...rest, version }));

/** What the model says a txn does: refused, failed at a check, or the new state and results. */
function modelTxn(
  model: Model,
  request: TxnRequest,
): { refused: true } | { refused: false; failedCheck: number } | { refused: false; failedCheck: -1; outcomes: string[]; revisions: bigint[]; versions: bigint[]; next: Model } {
  const validRevision = (r: bigint): boolean => r >= 1n && r <= MAX_VERSION;
  if (request.checks.length === 0 && request.operations.length === 0) return { refused: true };
  if (!request.checks.every((c) => keyValid(c) && (typeof c.expect !== "bigint" || validRevision(c.expect)))) return { refused: true };
  if (!request.operations.every((op) => keyValid(op))) return { refused: true };
  if (new Set(request.operations.map(idOf)).size !== request.operations.length) return { refused: true };
  if (request.version !== undefined && !validRevision(request.version)) return { refused: true };
  const failedCheck = request.checks.findIndex((c) => {
    const entry = model.get(idOf(c));
    return c.expect === "absent" ? entry !== undefined : c.expect === "present" ? entry === undefined : entry?.revision !== c.expect;
  });
  if (failedCheck >= 0) return { refused: false, failedCheck };
  const next = new Map(model);
  const outcomes: string[] = [];
  const revisions: bigint[] = [];
  /** The version each operation was applied at; a stale one reports the stored version it lost to. */
  const versions: bigint[] = [];
  const { version } = request;
  for (const op of request.operations) {
    const id = idOf(op);
    const entry = next.get(id);
    const stale = version !== undefined && entry !== undefined && version <= entry.version;
    if (op.kind === "write") {
      if (!stale) {
        const revision = op.revision ?? (entry === undefined ? 1n : entry.revision + 1n);
        next.set(id, { value: new TextDecoder().decode(op.value), version: version ?? entry?.version ?? 0n, revision });
      }
      outcomes.push(stale ? "stale" : "applied");
      revisions.push(next.get(id)!.revision);
      versions.push(next.get(id)!.version);
    } else {
      if (!stale) next.delete(id);
      outcomes.push(stale ? "stale" : "applied");
      revisions.push(0n);
      versions.push(stale ? entry!.version : (version ?? 0n));
    }
  }
  return { refused: false, failedCheck: -1, outcomes, revisions, versions, next };
}

/** Every key of the store as the model holds it. */
async function stateOf(store: KVStore): Promise<Model> {
  const state: Model = new Map();
  let pageToken = "";
  do {
    const page = await store.listAllKeys({ allStores: true, pageToken, limit: 4 });
    for (const key of page.keys) {
      const stored = await store.readVersioned(key);
      expect(stored.version).toBe(key.version);
      state.set(idOf(key), { value: new TextDecoder().decode(stored.value), version: stored.version, revision: stored.revision });
    }
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return state;
}

describe("Txn on the memory store", () => {
  it("is all-or-nothing: refused, failed at a check, or applied exactly as the model says, for random sequences", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(txnRequest, { minLength: 1, maxLength: 25 }), async (requests) => {
        const store = new MemoryStore();
        let model: Model = new Map();
        try {
          for (const request of requests) {
            const expected = modelTxn(model, request);
            let result: Awaited<ReturnType<KVStore["txn"]>> | undefined;
            let error: unknown;
            try {
              result = await store.txn(request);
            } catch (e) {
              error = e;
            }
            if (expected.refused) {
              expect(error, "refused by the model, accepted by the store").toBeInstanceOf(StoreError);
              expect((error as StoreError).code).toBe("invalid-argument");
            } else {
              if (error !== undefined) throw error;
              if (expected.failedCheck >= 0) expect(result).toEqual({ succeeded: false, failedCheck: expected.failedCheck });
              else if ("next" in expected) {
                expect(result).toEqual({ succeeded: true, outcomes: expected.outcomes, revisions: expected.revisions, versions: expected.versions });
                model = expected.next;
              }
            }
            // Whatever happened, the store holds exactly the model's state: nothing half-applied.
            expect(await stateOf(store)).toEqual(model);
          }
        } finally {
          await store.close();
        }
      }),
      { numRuns: 300 },
    );
  });

  it("a refused or failed txn leaves every key as it was, even when its operations come before the bad part", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(txnOperation, { minLength: 1, maxLength: 4 }), fc.constantFrom("bad key", "duplicate", "bad version", "failed check"), async (operations, flaw) => {
        const store = new MemoryStore();
        try {
          const seed: KeyRef = { storeId: "default", primaryNamespace: "a", secondaryNamespace: "", key: "k1" };
          await store.write(seed, new Uint8Array([7]));
          const before = await stateOf(store);
          const request: TxnRequest =
            flaw === "bad key"
              ? { checks: [], operations: [...operations, { primaryNamespace: "a", secondaryNamespace: "", key: "no/slash", kind: "remove" }] }
              : flaw === "duplicate"
                ? { checks: [], operations: [...operations, { ...operations[0]! }] }
                : flaw === "bad version"
                  ? { checks: [], operations, version: MAX_VERSION + 1n }
                  : { checks: [{ ...seed, expect: "absent" }], operations };
          const outcome = await store.txn(request).then(
            (result) => (result.succeeded ? "applied" : "failed check"),
            (error: unknown) => (error instanceof StoreError ? error.code : String(error)),
          );
          // An invalid key among the operations is refused before any check is looked at.
          if (flaw === "failed check") expect(["failed check", "invalid-argument"]).toContain(outcome);
          else expect(outcome).toBe("invalid-argument");
          expect(await stateOf(store)).toEqual(before);
        } finally {
          await store.close();
        }
      }),
    );
  });
});

// The reference model itself must refuse what it claims to: a sanity check of `keyValid`.
describe("the reference model", () => {
  it("agrees with hand-picked cases", () => {
    expect(keyValid({ primaryNamespace: "", secondaryNamespace: "", key: "k" })).toBe(true);
    expect(keyValid({ primaryNamespace: "", secondaryNamespace: "s", key: "k" })).toBe(false);
    expect(keyValid({ primaryNamespace: "p", secondaryNamespace: "", key: "" })).toBe(false);
    expect(keyValid({ primaryNamespace: "x".repeat(120), secondaryNamespace: "", key: "k" })).toBe(true);
    expect(keyValid({ primaryNamespace: "x".repeat(121), secondaryNamespace: "", key: "k" })).toBe(false);
    expect(keyValid({ storeId: "vss:u:s", primaryNamespace: "", secondaryNamespace: "", key: "any text / é" })).toBe(true);
    expect(keyValid({ storeId: "vss:u:s", primaryNamespace: "", secondaryNamespace: "", key: "a\u0085" })).toBe(false);
    expect(invalidArgument("x").code).toBe("invalid-argument");
  });
});
