//! The behaviour every KVStore must have (contract §1–§4), written once and run against each
//! backend from a few lines of its own spec file: `describeConformance` for the KVStore contract,
//! `describeBackupLedger` for backends that are also a `BackupLedger`.

import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { addressOf, errorOf, snapshot, text, walkAllKeys, walkPages } from "../support/store-assertions.js";
import {
  compareKeys,
  isStateReader,
  isStoreUsageReader,
  type StoreUsageReader,
  type BackupLedger,
  type Change,
  type ChangeLog,
  type KVStore,
  type KeyRef,
  type KeyVersion,
  type NamespaceRef,
  type TxnResult,
} from "../../src/store/types.js";

export interface StoreUnderTest<S extends KVStore = KVStore> {
  readonly store: S;
  /** Closes the store and opens the same data again (durable backends only). */
  readonly reopen?: () => Promise<S>;
  /** Releases everything the harness made (servers, files). The current store included. */
  close(): Promise<void>;
}

export interface ConformanceOptions {
  /** ListPage order the backend documents. */
  readonly pageOrder: "newest-created-first" | "key-order";
  /** The harness can `reopen` the same data: persistence is tested. */
  readonly durable: boolean;
  /**
   * The store gives an unversioned mutation a version of its own (the tiered store's clock)
   * instead of applying it unconditionally and keeping the stored version. Default false.
   */
  readonly assignsVersions?: boolean;
  /** `highestVersion()` is 0n ("cannot tell"): a client of a server, whose store keeps its own clock. */
  readonly highestVersionUnknown?: boolean;
  /**
   * The store keeps versions and revisions (default true). `false`: it has nowhere to keep them
   * (an LDK file layout): it reports 0n for both ("unknown"), applies every mutation whatever its
   * version (never `stale`), `highestVersion()` is 0n, and a Txn check on a revision never holds.
   * Tests of stale outcomes, counted revisions and the clock's seed are skipped.
   */
  readonly versions?: boolean;
  /**
   * `atomic` (default): a Txn applies any number of operations atomically. `single-operation`:
   * a Txn of more than one operation is refused with `failed-precondition` and changes nothing;
   * one with at most one operation is atomic with its checks.
   */
  readonly txn?: "atomic" | "single-operation";
}

/**
 * Caller versions of the suite: `n` above a base five minutes ahead of now, so they are above
 * every version a store's own clock assigns during the run, and within its allowed skew.
 */
const VERSION_BASE = BigInt(Date.now() + 5 * 60 * 1000) << 20n;
const v = (n: bigint): bigint => VERSION_BASE + n;

const ROOT: NamespaceRef = { primaryNamespace: "", secondaryNamespace: "" };
const NS: NamespaceRef = { primaryNamespace: "monitors", secondaryNamespace: "updates" };
const at = (ns: NamespaceRef, key: string): KeyRef => ({ ...ns, key });
const inStore = (storeId: string, ref: KeyRef): KeyRef => ({ ...ref, storeId });
const bytes = (value: string): Uint8Array => new TextEncoder().encode(value);

/** The successful result of a txn; fails the test when it did not succeed. */
function succeeded(result: TxnResult): { outcomes: readonly string[]; revisions: readonly bigint[]; versions: readonly bigint[] } {
  expect(result).toMatchObject({ succeeded: true });
  if (!result.succeeded) throw new Error("unreachable");
  return result;
}

export function describeConformance(
  name: string,
  open: () => Promise<StoreUnderTest>,
  options: ConformanceOptions,
): void {
  const versioned = options.versions !== false;
  const atomicTxn = options.txn !== "single-operation";
  /**
   * The version or revision the store reports back where the contract stores `n`: 0n (unknown)
   * without versions. Caller versions stay `v(…)`; only expected reports go through this.
   */
  const reported = (n: bigint): bigint => (versioned ? n : 0n);
  const itVersioned = versioned ? it : it.skip;
  const itAtomicVersionedTxn = atomicTxn && versioned ? it : it.skip;
  /** The operations of a Txn as this store can take them: the first one only without atomic batches. */
  const ops = <T>(operations: T[]): T[] => (atomicTxn ? operations : operations.slice(0, 1));

  describe(`KVStore conformance: ${name}`, () => {
    let harness: StoreUnderTest;
    let store: KVStore;
    beforeEach(async () => {
      harness = await open();
      store = harness.store;
    });
    afterEach(async () => {
      await harness.close();
    });

    describe("read and write", () => {
      it("round-trips an empty value", async () => {
        await store.write(at(NS, "empty"), new Uint8Array());
        expect(await store.read(at(NS, "empty"))).toHaveLength(0);
      });

      it("round-trips every byte value", async () => {
        const value = Uint8Array.from({ length: 256 }, (_, i) => i);
        await store.write(at(NS, "binary"), value);
        expect(Buffer.from(await store.read(at(NS, "binary")))).toEqual(Buffer.from(value));
      });

      it("round-trips a 10 MiB value", async () => {
        const value = randomBytes(10 * 1024 * 1024);
        await store.write(at(NS, "big"), value);
        expect(Buffer.compare(Buffer.from(await store.read(at(NS, "big"))), value)).toBe(0);
      });

      it("reports a key's state without its value, where the backend can (StateReader)", async (context) => {
        if (!isStateReader(store)) return context.skip();
        expect(await store.readState(at(NS, "absent"))).toBeUndefined();
        await store.write(at(NS, "k"), bytes("one"));
        await store.write(at(NS, "k"), bytes("two"));
        const { version, revision } = await store.readVersioned(at(NS, "k"));
        expect(await store.readState(at(NS, "k"))).toEqual({ version, revision });
        await store.remove(at(NS, "k"));
        expect(await store.readState(at(NS, "k"))).toBeUndefined();
      });

      it("answers not-found for an absent key", async () => {
        const error = await errorOf(store.read(at(NS, "absent")));
        expect(error.code).toBe("not-found");
        expect(error.message).toContain("monitors/updates/absent");
      });

      it("overwrites", async () => {
        await store.write(at(NS, "k"), bytes("one"));
        await store.write(at(NS, "k"), bytes("two"));
        expect(text(await store.read(at(NS, "k")))).toBe("two");
      });

      it("keeps namespaces apart", async () => {
        const other = { primaryNamespace: "monitors", secondaryNamespace: "other" };
        await store.write(at(NS, "k"), bytes("a"));
        await store.write(at(other, "k"), bytes("b"));
        await store.write(at({ primaryNamespace: "monitors", secondaryNamespace: "" }, "k"), bytes("c"));
        expect(text(await store.read(at(NS, "k")))).toBe("a");
        expect(text(await store.read(at(other, "k")))).toBe("b");
        expect(await store.list(other)).toEqual(["k"]);
      });

      it("serves the root namespace", async () => {
        await store.write(at(ROOT, "manager"), bytes("m"));
        expect(text(await store.read(at(ROOT, "manager")))).toBe("m");
        expect(await store.list(ROOT)).toEqual(["manager"]);
        expect((await store.listPage(ROOT)).keys).toEqual(["manager"]);
      });

      it("does not let a caller's buffer change the stored value afterwards", async () => {
        const value = bytes("original");
        await store.write(at(NS, "k"), value);
        value.fill(0);
        expect(text(await store.read(at(NS, "k")))).toBe("original");
      });
    });

    describe("remove", () => {
      it("removes a key", async () => {
        await store.write(at(NS, "k"), bytes("v"));
        expect(await store.remove(at(NS, "k"))).toBe("applied");
        expect((await errorOf(store.read(at(NS, "k")))).code).toBe("not-found");
        expect(await store.list(NS)).toEqual([]);
      });

      it("succeeds for an absent key", async () => {
        expect(await store.remove(at(NS, "never-written"))).toBe("applied");
        expect(await store.remove(at(NS, "never-written"), { lazy: true })).toBe("applied");
      });

      it("hides the value at once after a lazy remove, and a later write cancels it", async () => {
        await store.write(at(NS, "k"), bytes("v1"));
        expect(await store.remove(at(NS, "k"), { lazy: true })).toBe("applied");
        expect((await errorOf(store.read(at(NS, "k")))).code).toBe("not-found");
        await store.write(at(NS, "k"), bytes("v2"));
        expect(text(await store.read(at(NS, "k")))).toBe("v2");
        expect(await store.list(NS)).toEqual(["k"]);
      });
    });

    describe("list", () => {
      it("lists each key once, whatever was overwritten or removed", async () => {
        for (const key of ["a", "b", "c", "a", "b"]) await store.write(at(NS, key), bytes(key));
        await store.remove(at(NS, "c"));
        expect((await store.list(NS)).sort()).toEqual(["a", "b"]);
      });

      it("lists an unknown namespace as empty", async () => {
        expect(await store.list({ primaryNamespace: "nothing", secondaryNamespace: "here" })).toEqual([]);
        expect(await store.listPage({ primaryNamespace: "nothing", secondaryNamespace: "" })).toEqual({
          keys: [],
          nextPageToken: "",
        });
      });

      it("returns at most `limit` distinct keys of the namespace", async () => {
        const written = Array.from({ length: 10 }, (_, i) => `key_${i}`);
        for (const key of written) await store.write(at(NS, key), bytes(key));
        await store.write(at({ primaryNamespace: "monitors", secondaryNamespace: "" }, "outside"), bytes("x"));
        const keys = await store.list(NS, { limit: 3 });
        expect(keys).toHaveLength(3);
        expect(new Set(keys).size).toBe(3);
        for (const key of keys) expect(written).toContain(key);
        expect((await store.list(NS, { limit: 10 })).sort()).toEqual([...written].sort());
        expect((await store.list(NS, { limit: 11 })).sort()).toEqual([...written].sort());
      });
    });

    describe("listPage", () => {
      it("walks 1,000 keys with page size 7, each key exactly once", async () => {
        const written = Array.from({ length: 1000 }, (_, i) => `key_${i}`);
        for (const key of written) await store.write(at(NS, key), bytes(key));
        const seen = await walkPages(store, NS, 7);
        expect(seen).toHaveLength(1000);
        expect(new Set(seen).size).toBe(1000);
        if (options.pageOrder === "newest-created-first") expect(seen).toEqual([...written].reverse());
        else expect(seen).toEqual([...written].sort());
      });

      it("uses the default page size when none is given", async () => {
        for (let i = 0; i < 5; i++) await store.write(at(NS, `k${i}`), bytes("v"));
        const page = await store.listPage(NS);
        expect(page.keys).toHaveLength(5);
        expect(page.nextPageToken).toBe("");
      });

      if (options.pageOrder === "newest-created-first") {
        it("keeps an overwritten key at its creation position", async () => {
          for (const key of ["a", "b", "c"]) await store.write(at(NS, key), bytes("1"));
          await store.write(at(NS, "a"), bytes("2"));
          expect(await walkPages(store, NS, 2)).toEqual(["c", "b", "a"]);
        });
      }

      it("resumes after the token's key when that key was removed", async () => {
        for (const key of ["a", "b", "c", "d", "e"]) await store.write(at(NS, key), bytes("v"));
        const first = await store.listPage(NS, { pageSize: 2 });
        await store.remove(at(NS, first.keys[1]!));
        const after: string[] = [];
        let token = first.nextPageToken;
        while (token !== "") {
          const page = await store.listPage(NS, { pageSize: 2, pageToken: token });
          after.push(...page.keys);
          token = page.nextPageToken;
        }
        expect([...first.keys, ...after].sort()).toEqual(["a", "b", "c", "d", "e"]);
        expect(after).toHaveLength(3);
      });

      it("rejects a malformed page token", async () => {
        for (const token of ["garbage", "%%%", Buffer.from('{"f":1}').toString("base64url")]) {
          const error = await errorOf(store.listPage(NS, { pageToken: token }));
          expect(error.code).toBe("invalid-argument");
          expect(error.message).toContain("page_token");
        }
      });

      it("rejects a page token from another namespace pair", async () => {
        for (let i = 0; i < 3; i++) await store.write(at(NS, `k${i}`), bytes("v"));
        const { nextPageToken } = await store.listPage(NS, { pageSize: 1 });
        expect(nextPageToken).not.toBe("");
        const error = await errorOf(store.listPage(ROOT, { pageToken: nextPageToken }));
        expect(error.code).toBe("invalid-argument");
        expect(error.message).toContain("page_token");
      });
    });

    describe("versions and outcomes (contract §3)", () => {
      it("reports applied for writes and removes", async () => {
        expect(await store.write(at(NS, "k"), bytes("one"))).toBe("applied");
        expect(await store.write(at(NS, "k"), bytes("two"))).toBe("applied");
        expect(await store.write(at(NS, "k"), bytes("three"), { version: v(5n) })).toBe("applied");
        expect(await store.remove(at(NS, "k"), { version: v(6n) })).toBe("applied");
        expect((await errorOf(store.read(at(NS, "k")))).code).toBe("not-found");
      });

      itVersioned("does not apply a write at or below the stored version, and says so", async () => {
        expect(await store.write(at(NS, "k"), bytes("new"), { version: v(20n) })).toBe("applied");
        const before = await store.readVersioned(at(NS, "k"));
        expect(await store.write(at(NS, "k"), bytes("older"), { version: v(10n) })).toBe("stale");
        expect(await store.write(at(NS, "k"), bytes("same"), { version: v(20n) })).toBe("stale");
        const after = await store.readVersioned(at(NS, "k"));
        expect(text(after.value)).toBe("new");
        expect(after.version).toBe(v(20n));
        expect(after.revision).toBe(before.revision);
        expect(await store.write(at(NS, "k"), bytes("newer"), { version: v(30n) })).toBe("applied");
        expect(text(await store.read(at(NS, "k")))).toBe("newer");
        expect((await store.readVersioned(at(NS, "k"))).version).toBe(v(30n));
      });

      itVersioned("does not apply a remove at or below the stored version, and says so", async () => {
        await store.write(at(NS, "k"), bytes("kept"), { version: v(20n) });
        expect(await store.remove(at(NS, "k"), { version: v(10n) })).toBe("stale");
        expect(await store.remove(at(NS, "k"), { version: v(20n), lazy: true })).toBe("stale");
        const kept = await store.readVersioned(at(NS, "k"));
        expect(text(kept.value)).toBe("kept");
        expect(kept.version).toBe(v(20n));
        expect(kept.revision).toBe(1n);
        expect(await store.list(NS)).toEqual(["k"]);
        expect(await store.remove(at(NS, "k"), { version: v(21n) })).toBe("applied");
        expect((await errorOf(store.read(at(NS, "k")))).code).toBe("not-found");
      });

      it("reports applied when removing an absent key, with or without a version", async () => {
        expect(await store.remove(at(NS, "absent"))).toBe("applied");
        expect(await store.remove(at(NS, "absent"), { version: v(3n) })).toBe("applied");
        expect(await store.list(NS)).toEqual([]);
      });

      itVersioned("applies an unversioned write over a versioned key", async () => {
        await store.write(at(NS, "k"), bytes("versioned"), { version: v(42n) });
        expect(await store.write(at(NS, "k"), bytes("plain"))).toBe("applied");
        const stored = await store.readVersioned(at(NS, "k"));
        expect(text(stored.value)).toBe("plain");
        expect(stored.revision).toBe(2n);
        if (options.assignsVersions) expect(stored.version).toBeGreaterThan(v(42n));
        else expect(stored.version).toBe(v(42n));
        // The version it kept still orders later versioned mutations.
        expect(await store.write(at(NS, "k"), bytes("late"), { version: v(41n) })).toBe("stale");
        expect(text(await store.read(at(NS, "k")))).toBe("plain");
      });

      if (!versioned) {
        it("applies every mutation whatever its version, and reports version and revision 0 (unknown)", async () => {
          expect(await store.write(at(NS, "k"), bytes("new"), { version: v(20n) })).toBe("applied");
          expect(await store.write(at(NS, "k"), bytes("older"), { version: v(10n) })).toBe("applied");
          expect(await store.readVersioned(at(NS, "k"))).toMatchObject({ version: 0n, revision: 0n });
          expect(text(await store.read(at(NS, "k")))).toBe("older");
          expect(await store.write(at(NS, "k"), bytes("exact"), { version: v(3n), revision: 9n, exact: true })).toBe("applied");
          expect(text(await store.read(at(NS, "k")))).toBe("exact");
          expect((await store.listAllKeys()).keys).toMatchObject([{ key: "k", version: 0n, revision: 0n }]);
          expect(await store.remove(at(NS, "k"), { version: v(1n) })).toBe("applied");
          expect((await errorOf(store.read(at(NS, "k")))).code).toBe("not-found");
        });
      }
    });

    describe("revisions (contract §3)", () => {
      itVersioned("counts 1 on creation and +1 per write, in readVersioned and listAllKeys", async () => {
        await store.write(at(NS, "k"), bytes("1"));
        expect((await store.readVersioned(at(NS, "k"))).revision).toBe(1n);
        await store.write(at(NS, "k"), bytes("2"));
        await store.write(at(NS, "k"), bytes("3"), { version: v(7n) });
        const stored = await store.readVersioned(at(NS, "k"));
        expect(stored.revision).toBe(3n);
        expect(text(stored.value)).toBe("3");
        await store.write(at(NS, "other"), bytes("x"));
        const { keys } = await store.listAllKeys();
        expect(keys.map((k) => [k.key, k.revision])).toEqual([
          ["k", 3n],
          ["other", 1n],
        ]);
      });

      itVersioned("starts again at 1 when a removed key is written again", async () => {
        await store.write(at(NS, "k"), bytes("1"));
        await store.write(at(NS, "k"), bytes("2"));
        await store.remove(at(NS, "k"));
        await store.write(at(NS, "k"), bytes("again"));
        expect((await store.readVersioned(at(NS, "k"))).revision).toBe(1n);
      });

      itVersioned("stores the revision a write gives, and counts on from it", async () => {
        await store.write(at(NS, "k"), bytes("mirrored"), { revision: 17n });
        expect((await store.readVersioned(at(NS, "k"))).revision).toBe(17n);
        await store.write(at(NS, "k"), bytes("next"));
        expect((await store.readVersioned(at(NS, "k"))).revision).toBe(18n);
        await store.write(at(NS, "k"), bytes("lower"), { revision: 4n });
        expect((await store.readVersioned(at(NS, "k"))).revision).toBe(4n);
        expect((await store.listAllKeys()).keys[0]!.revision).toBe(4n);
      });

      itVersioned("stores exactly the version and revision of an exact write, even below the stored version", async () => {
        await store.write(at(NS, "k"), bytes("current"), { version: v(50n) });
        await store.write(at(NS, "k"), bytes("current"), { version: v(51n) });
        expect(await store.write(at(NS, "k"), bytes("repaired"), { version: v(10n), revision: 9n, exact: true })).toBe("applied");
        const stored = await store.readVersioned(at(NS, "k"));
        expect(text(stored.value)).toBe("repaired");
        expect(stored.version).toBe(v(10n));
        expect(stored.revision).toBe(9n);
        const [listed] = (await store.listAllKeys()).keys;
        expect(listed).toMatchObject({ key: "k", version: v(10n), revision: 9n });
        // An exact copy of an absent key creates it with exactly that state too.
        expect(await store.write(at(NS, "new"), bytes("copied"), { version: v(3n), revision: 5n, exact: true })).toBe("applied");
        expect(await store.readVersioned(at(NS, "new"))).toMatchObject({ version: v(3n), revision: 5n });
      });
    });

    describe("txn (contract §2)", () => {
      const A = at(NS, "a");
      const B = at(NS, "b");
      const C = at(NS, "c");

      itAtomicVersionedTxn("applies every operation when every check holds, and returns the revisions", async () => {
        await store.write(A, bytes("a1"));
        await store.write(C, bytes("c1"));
        const result = succeeded(
          await store.txn({
            checks: [
              { ...A, expect: 1n },
              { ...B, expect: "absent" },
              { ...C, expect: "present" },
            ],
            operations: [
              { ...A, kind: "write", value: bytes("a2") },
              { ...B, kind: "write", value: bytes("b1") },
              { ...C, kind: "remove" },
            ],
          }),
        );
        expect(result.outcomes).toEqual(["applied", "applied", "applied"]);
        expect(result.revisions).toEqual([2n, 1n, 0n]);
        expect(await store.readVersioned(A)).toMatchObject({ revision: 2n });
        expect(text(await store.read(A))).toBe("a2");
        expect(await store.readVersioned(B)).toMatchObject({ revision: 1n });
        expect(text(await store.read(B))).toBe("b1");
        expect((await errorOf(store.read(C))).code).toBe("not-found");
      });

      it("applies operations without checks, and checks without operations", async () => {
        const result = succeeded(await store.txn({ checks: [], operations: [{ ...A, kind: "write", value: bytes("x") }] }));
        expect(result).toMatchObject({ outcomes: ["applied"], revisions: [reported(1n)] });
        expect(succeeded(await store.txn({ checks: [{ ...A, expect: "present" }], operations: [] }))).toMatchObject({
          outcomes: [],
          revisions: [],
        });
      });

      itVersioned("stores the revision a write operation gives", async () => {
        await store.write(A, bytes("a1"));
        const result = succeeded(await store.txn({ checks: [], operations: [{ ...A, kind: "write", value: bytes("a2"), revision: 40n }] }));
        expect(result.revisions).toEqual([40n]);
        expect((await store.readVersioned(A)).revision).toBe(40n);
      });

      const failing: Array<[string, (a: KeyRef, absent: KeyRef) => { expect: "absent" | "present" | bigint; ref: KeyRef }]> = [
        ["absent on a present key", (a) => ({ ref: a, expect: "absent" })],
        ["present on an absent key", (_, absent) => ({ ref: absent, expect: "present" })],
        ["a revision other than the stored one", (a) => ({ ref: a, expect: 5n })],
        ["a revision on an absent key", (_, absent) => ({ ref: absent, expect: 1n })],
      ];
      for (const [what, make] of failing) {
        it(`changes nothing when a check expects ${what}`, async () => {
          await store.write(A, bytes("a1"), { version: v(10n) });
          await store.write(A, bytes("a2"));
          await store.write(C, bytes("c1"));
          await store.write(inStore("alice", A), bytes("alice"));
          const before = await snapshot(store);
          const bad = make(A, B);
          const result = await store.txn({
            checks: [
              { ...C, expect: "present" },
              { ...bad.ref, expect: bad.expect },
              { ...A, expect: 999n },
            ],
            operations: ops([
              { ...A, kind: "write" as const, value: bytes("changed") },
              { ...B, kind: "write" as const, value: bytes("created") },
              { ...C, kind: "remove" as const },
              { ...inStore("alice", A), kind: "remove" as const },
            ]),
          });
          expect(result).toEqual({ succeeded: false, failedCheck: 1 });
          expect(await snapshot(store)).toEqual(before);
          expect(before.map((e) => e.address)).toEqual([
            "alice:monitors/updates/a",
            "default:monitors/updates/a",
            "default:monitors/updates/c",
          ]);
        });
      }

      itAtomicVersionedTxn("skips operations at or below the stored version (stale), applying the rest", async () => {
        await store.write(A, bytes("a-newer"), { version: v(20n) });
        await store.write(B, bytes("b-older"), { version: v(5n) });
        await store.write(C, bytes("c-newer"), { version: v(30n) });
        const result = succeeded(
          await store.txn({
            checks: [],
            operations: [
              { ...A, kind: "write", value: bytes("a-txn") },
              { ...B, kind: "write", value: bytes("b-txn") },
              { ...C, kind: "remove" },
              { ...at(NS, "d"), kind: "write", value: bytes("d-txn") },
            ],
            version: v(10n),
          }),
        );
        expect(result.outcomes).toEqual(["stale", "applied", "stale", "applied"]);
        expect(result.revisions[1]).toBe(2n);
        expect(result.revisions[3]).toBe(1n);
        expect(await store.readVersioned(A)).toMatchObject({ version: v(20n), revision: 1n });
        expect(text(await store.read(A))).toBe("a-newer");
        expect(await store.readVersioned(B)).toMatchObject({ version: v(10n), revision: 2n });
        expect(text(await store.read(B))).toBe("b-txn");
        expect(await store.readVersioned(C)).toMatchObject({ version: v(30n), revision: 1n });
        expect(await store.readVersioned(at(NS, "d"))).toMatchObject({ version: v(10n), revision: 1n });
      });

      it("rejects a key that appears in two operations, and changes nothing", async () => {
        await store.write(A, bytes("a1"));
        const before = await snapshot(store);
        const error = await errorOf(
          store.txn({
            checks: [],
            operations: [
              { ...B, kind: "write", value: bytes("b") },
              { ...A, kind: "write", value: bytes("x") },
              { ...A, kind: "remove" },
            ],
          }),
        );
        expect(error.code).toBe("invalid-argument");
        expect(await snapshot(store)).toEqual(before);
      });

      it("rejects an empty transaction", async () => {
        expect((await errorOf(store.txn({ checks: [], operations: [] }))).code).toBe("invalid-argument");
      });

      it("rejects an invalid key in a check or an operation, and changes nothing", async () => {
        await store.write(A, bytes("a1"));
        const before = await snapshot(store);
        const invalid = at(NS, "not/valid");
        const requests = [
          { checks: [], operations: [{ ...B, kind: "write" as const, value: bytes("b") }, { ...invalid, kind: "write" as const, value: bytes("x") }] },
          { checks: [], operations: [{ ...A, kind: "remove" as const }, { ...invalid, kind: "remove" as const }] },
          { checks: [{ ...invalid, expect: "absent" as const }], operations: [{ ...A, kind: "remove" as const }] },
          { checks: [{ ...A, expect: 0n }], operations: [{ ...A, kind: "remove" as const }] },
          { checks: [], operations: [{ ...A, kind: "remove" as const }], version: 0n },
        ];
        for (const request of requests) {
          expect((await errorOf(store.txn(request))).code).toBe("invalid-argument");
        }
        expect(await snapshot(store)).toEqual(before);
      });

      itVersioned("loses no update when 16 callers increment one counter with conditional txns", async () => {
        const counter = at(NS, "counter");
        await store.write(counter, bytes("0"));
        const workers = 16;
        const incrementsEach = 5;
        let successes = 0;
        let conflicts = 0;
        const increment = async (): Promise<void> => {
          for (let done = 0; done < incrementsEach; ) {
            if (successes + conflicts > 20_000) throw new Error("no progress");
            const { value, revision } = await store.readVersioned(counter);
            const next = Number(text(value)) + 1;
            const result = await store.txn({
              checks: [{ ...counter, expect: revision }],
              operations: [{ ...counter, kind: "write", value: bytes(String(next)) }],
            });
            if (result.succeeded) {
              expect(result.revisions).toEqual([revision + 1n]);
              successes++;
              done++;
            } else {
              expect(result.failedCheck).toBe(0);
              conflicts++;
            }
          }
        };
        await Promise.all(Array.from({ length: workers }, increment));
        expect(successes).toBe(workers * incrementsEach);
        const final = await store.readVersioned(counter);
        expect(Number(text(final.value))).toBe(successes);
        expect(final.revision).toBe(BigInt(successes) + 1n);
      });

      if (!atomicTxn) {
        it("refuses a txn of several operations with failed-precondition, and changes nothing", async () => {
          await store.write(A, bytes("a1"));
          const before = await snapshot(store);
          const error = await errorOf(
            store.txn({
              checks: [{ ...A, expect: "present" }],
              operations: [
                { ...A, kind: "write", value: bytes("a2") },
                { ...B, kind: "write", value: bytes("b1") },
              ],
            }),
          );
          expect(error.code).toBe("failed-precondition");
          expect(await snapshot(store)).toEqual(before);
        });

        it("applies a txn of one operation when its checks hold, and nothing when one does not", async () => {
          await store.write(C, bytes("c1"));
          const create = { checks: [{ ...A, expect: "absent" as const }, { ...C, expect: "present" as const }], operations: [{ ...A, kind: "write" as const, value: bytes("a1") }] };
          expect(succeeded(await store.txn(create)).outcomes).toEqual(["applied"]);
          expect(text(await store.read(A))).toBe("a1");
          const before = await snapshot(store);
          expect(await store.txn(create)).toEqual({ succeeded: false, failedCheck: 0 });
          expect(await snapshot(store)).toEqual(before);
          expect(succeeded(await store.txn({ checks: [{ ...A, expect: "present" }], operations: [{ ...C, kind: "remove" }] })).outcomes).toEqual(["applied"]);
          expect((await errorOf(store.read(C))).code).toBe("not-found");
        });
      }
    });

    describe("stores (tenants)", () => {
      const alice = (ref: KeyRef): KeyRef => inStore("alice", ref);
      const bob = (ref: KeyRef): KeyRef => inStore("bob", ref);

      it("keeps the same namespace and key apart in two stores", async () => {
        const k = at(NS, "k");
        await store.write(alice(k), bytes("alice's"));
        await store.write(bob(k), bytes("bob's"));
        await store.write(bob(k), bytes("bob's again"));
        expect(text(await store.read(alice(k)))).toBe("alice's");
        expect(await store.readVersioned(alice(k))).toMatchObject({ revision: reported(1n) });
        expect(text(await store.read(bob(k)))).toBe("bob's again");
        expect(await store.readVersioned(bob(k))).toMatchObject({ revision: reported(2n) });
        expect((await errorOf(store.read(k))).code).toBe("not-found");
        expect(await store.list({ ...NS, storeId: "alice" })).toEqual(["k"]);
        expect(await store.list({ ...NS, storeId: "bob" })).toEqual(["k"]);
        expect(await store.list(NS)).toEqual([]);
        expect((await store.listPage({ ...NS, storeId: "alice" })).keys).toEqual(["k"]);
        expect((await store.listPage(NS)).keys).toEqual([]);

        expect(await store.remove(alice(k))).toBe("applied");
        expect((await errorOf(store.read(alice(k)))).code).toBe("not-found");
        expect(text(await store.read(bob(k)))).toBe("bob's again");
        expect(await store.list({ ...NS, storeId: "alice" })).toEqual([]);
        expect(await store.list({ ...NS, storeId: "bob" })).toEqual(["k"]);
      });

      it("keeps versions per store", async () => {
        const k = at(NS, "k");
        await store.write(alice(k), bytes("a"), { version: v(100n) });
        expect(await store.write(bob(k), bytes("b"), { version: v(5n) })).toBe("applied");
        expect(await store.remove(bob(k), { version: v(50n) })).toBe("applied");
        expect(await store.readVersioned(alice(k))).toMatchObject({ version: reported(v(100n)) });
      });

      itAtomicVersionedTxn("checks and applies a txn in the store each key names", async () => {
        const k = at(NS, "k");
        await store.write(alice(k), bytes("a1"));
        await store.write(alice(k), bytes("a2"));
        await store.write(bob(k), bytes("b1"));
        // Bob's key is at revision 1, alice's at 2: the check names bob's.
        const result = succeeded(
          await store.txn({
            checks: [
              { ...bob(k), expect: 1n },
              { ...k, expect: "absent" },
            ],
            operations: [
              { ...bob(k), kind: "write", value: bytes("b2") },
              { ...alice(k), kind: "remove" },
              { ...k, kind: "write", value: bytes("default") },
            ],
          }),
        );
        expect(result.revisions).toEqual([2n, 0n, 1n]);
        expect(text(await store.read(bob(k)))).toBe("b2");
        expect((await errorOf(store.read(alice(k)))).code).toBe("not-found");
        expect(text(await store.read(k))).toBe("default");
        // A check on alice's (now absent) key fails although bob's and the default store's exist.
        const before = await snapshot(store);
        expect(await store.txn({ checks: [{ ...alice(k), expect: "present" }], operations: [{ ...bob(k), kind: "remove" }] })).toEqual({
          succeeded: false,
          failedCheck: 0,
        });
        expect(await snapshot(store)).toEqual(before);
      });

      if (!atomicTxn || !versioned) {
        it("checks and applies a one-operation txn in the store each key names", async () => {
          const k = at(NS, "k");
          await store.write(alice(k), bytes("a1"));
          await store.write(bob(k), bytes("b1"));
          const result = succeeded(
            await store.txn({
              checks: [
                { ...bob(k), expect: "present" },
                { ...k, expect: "absent" },
              ],
              operations: [{ ...k, kind: "write", value: bytes("default") }],
            }),
          );
          expect(result.revisions).toEqual([reported(1n)]);
          expect(text(await store.read(k))).toBe("default");
          expect(succeeded(await store.txn({ checks: [], operations: [{ ...alice(k), kind: "remove" }] })).outcomes).toEqual(["applied"]);
          expect((await errorOf(store.read(alice(k)))).code).toBe("not-found");
          expect(text(await store.read(bob(k)))).toBe("b1");
          // A check on alice's (now absent) key fails although bob's and the default store's exist.
          const before = await snapshot(store);
          expect(await store.txn({ checks: [{ ...alice(k), expect: "present" }], operations: [{ ...bob(k), kind: "remove" }] })).toEqual({
            succeeded: false,
            failedCheck: 0,
          });
          expect(await snapshot(store)).toEqual(before);
        });
      }

      it("refuses a listPage token of one store in another", async () => {
        for (let i = 0; i < 3; i++) {
          await store.write(alice(at(NS, `k${i}`)), bytes("v"));
          await store.write(bob(at(NS, `k${i}`)), bytes("v"));
        }
        const { nextPageToken } = await store.listPage({ ...NS, storeId: "alice" }, { pageSize: 1 });
        expect(nextPageToken).not.toBe("");
        const error = await errorOf(store.listPage({ ...NS, storeId: "bob" }, { pageToken: nextPageToken }));
        expect(error.code).toBe("invalid-argument");
        expect(error.message).toContain("page_token");
        expect((await errorOf(store.listPage(NS, { pageToken: nextPageToken }))).code).toBe("invalid-argument");
        expect(await walkPages(store, { ...NS, storeId: "alice" }, 1)).toHaveLength(3);
      });

      it("lists one store's keys, or every store's in store order", async () => {
        await store.write(bob(at(NS, "b")), bytes("v"), { version: v(2n) });
        await store.write(at(ROOT, "d"), bytes("v"), { version: v(3n) });
        await store.write(alice(at(NS, "a")), bytes("v"), { version: v(1n) });
        await store.write(alice(at(ROOT, "a0")), bytes("v"), { version: v(4n) });

        const ofAlice = await store.listAllKeys({ storeId: "alice" });
        expect(ofAlice.nextPageToken).toBe("");
        expect(ofAlice.keys).toEqual([
          { storeId: "alice", primaryNamespace: "", secondaryNamespace: "", key: "a0", version: reported(v(4n)), revision: reported(1n) },
          { storeId: "alice", primaryNamespace: "monitors", secondaryNamespace: "updates", key: "a", version: reported(v(1n)), revision: reported(1n) },
        ]);
        expect((await store.listAllKeys({ storeId: "bob" })).keys.map(addressOf)).toEqual(["bob:monitors/updates/b"]);
        const ofDefault = await store.listAllKeys();
        expect(ofDefault.keys).toEqual([
          { storeId: "default", primaryNamespace: "", secondaryNamespace: "", key: "d", version: reported(v(3n)), revision: reported(1n) },
        ]);
        expect((await store.listAllKeys({ storeId: "default" })).keys).toEqual(ofDefault.keys);
        expect((await store.listAllKeys({ storeId: "carol" })).keys).toEqual([]);

        const all = await store.listAllKeys({ allStores: true });
        expect(all.nextPageToken).toBe("");
        expect(all.keys.map(addressOf)).toEqual([
          "alice://a0",
          "alice:monitors/updates/a",
          "bob:monitors/updates/b",
          "default://d",
        ]);
      });

      it("refuses a listAllKeys token of one store in another, but not across all stores", async () => {
        for (let i = 0; i < 3; i++) {
          await store.write(alice(at(NS, `k${i}`)), bytes("v"));
          await store.write(bob(at(NS, `k${i}`)), bytes("v"));
        }
        const first = await store.listAllKeys({ storeId: "alice", limit: 1 });
        expect(first.keys.map(addressOf)).toEqual(["alice:monitors/updates/k0"]);
        expect(first.nextPageToken).not.toBe("");
        const error = await errorOf(store.listAllKeys({ storeId: "bob", pageToken: first.nextPageToken }));
        expect(error.code).toBe("invalid-argument");
        expect(error.message).toContain("page_token");
        expect((await errorOf(store.listAllKeys({ pageToken: first.nextPageToken }))).code).toBe("invalid-argument");
        const rest = await store.listAllKeys({ storeId: "alice", pageToken: first.nextPageToken });
        expect(rest.keys.map(addressOf)).toEqual(["alice:monitors/updates/k1", "alice:monitors/updates/k2"]);
        const across = await store.listAllKeys({ allStores: true, pageToken: first.nextPageToken });
        expect(across.keys.map((k) => k.storeId)).toEqual(["alice", "alice", "bob", "bob", "bob"]);
      });

      it("rejects a malformed listAllKeys token", async () => {
        for (const token of ["garbage", Buffer.from("[2,\"default\"]").toString("base64url")]) {
          const error = await errorOf(store.listAllKeys({ pageToken: token }));
          expect(error.code).toBe("invalid-argument");
          expect(error.message).toContain("page_token");
        }
      });

      const badStoreIds: Array<[string, string]> = [
        ["an empty store id", ""],
        ["a control character in the store id", "ali\u0001ce"],
        ["a 257-character store id", "s".repeat(257)],
      ];
      for (const [what, storeId] of badStoreIds) {
        it(`rejects ${what} in every operation and changes nothing`, async () => {
          await store.write(at(NS, "k"), bytes("v"));
          const before = await snapshot(store);
          const ref = inStore(storeId, at(NS, "k"));
          const ns = { ...NS, storeId };
          const errors = await Promise.all([
            errorOf(store.write(ref, bytes("x"))),
            errorOf(store.read(ref)),
            errorOf(store.readVersioned(ref)),
            errorOf(store.remove(ref)),
            errorOf(store.list(ns)),
            errorOf(store.listPage(ns)),
            errorOf(store.txn({ checks: [], operations: [{ ...ref, kind: "write", value: bytes("x") }] })),
            errorOf(store.txn({ checks: [{ ...ref, expect: "absent" }], operations: [{ ...at(NS, "k"), kind: "remove" }] })),
          ]);
          for (const error of errors) expect(error.code).toBe("invalid-argument");
          if (storeId !== "") {
            // Over the wire an empty store id means "the default store"; every other bad one is refused.
            expect((await errorOf(store.listAllKeys({ storeId }))).code).toBe("invalid-argument");
          }
          expect(await snapshot(store)).toEqual(before);
        });
      }

      it("accepts a 256-character store id with any printable characters", async () => {
        const storeId = "ü/ €.:@".padEnd(256, "x");
        const ref = inStore(storeId, at(NS, "k"));
        await store.write(ref, bytes("v"));
        expect(text(await store.read(ref))).toBe("v");
        expect((await store.listAllKeys({ storeId })).keys.map((k) => k.storeId)).toEqual([storeId]);
      });
    });

    describe("readVersioned and listAllKeys", () => {
      it("returns the version that wrote the value", async () => {
        await store.write(at(NS, "k"), bytes("v"), { version: v(42n) });
        const { value, version, revision } = await store.readVersioned(at(NS, "k"));
        expect(text(value)).toBe("v");
        expect(version).toBe(reported(v(42n)));
        expect(revision).toBe(reported(1n));
        expect((await errorOf(store.readVersioned(at(NS, "absent")))).code).toBe("not-found");
      });

      itVersioned("keeps versions above 2^53 exact", async () => {
        const version = v(1n);
        await store.write(at(NS, "k"), bytes("v"), { version });
        expect((await store.readVersioned(at(NS, "k"))).version).toBe(version);
        expect((await store.listAllKeys()).keys[0]!.version).toBe(version);
      });

      it("walks every key of every namespace in (primary, secondary, key) order", async () => {
        const refs = [
          at(ROOT, "manager"),
          at(NS, "b"),
          at(NS, "a"),
          at({ primaryNamespace: "monitors", secondaryNamespace: "" }, "z"),
          at({ primaryNamespace: "zeta", secondaryNamespace: "x" }, "k"),
          at({ primaryNamespace: "alpha", secondaryNamespace: "" }, "k"),
        ];
        for (const [i, ref] of refs.entries()) await store.write(ref, bytes("v"), { version: v(BigInt(i + 1)) });
        await store.remove(at(NS, "b"));
        const { keys, pages } = await walkAllKeys(store, {}, 2);
        expect(pages).toBe(3);
        expect(keys.map((k) => ({ path: `${k.primaryNamespace}|${k.secondaryNamespace}|${k.key}`, version: k.version }))).toEqual([
          { path: "||manager", version: reported(v(1n)) },
          { path: "alpha||k", version: reported(v(6n)) },
          { path: "monitors||z", version: reported(v(4n)) },
          { path: "monitors|updates|a", version: reported(v(3n)) },
          { path: "zeta|x|k", version: reported(v(5n)) },
        ]);
        expect(keys.every((k) => k.storeId === "default")).toBe(true);
      });

      it("walks 49 keys of several namespaces and stores with limit 7, each exactly once and in order", async () => {
        const written: KeyRef[] = [];
        const namespaces = [ROOT, NS, { primaryNamespace: "monitors", secondaryNamespace: "" }, { primaryNamespace: "zeta", secondaryNamespace: "x" }];
        const stores = [undefined, "alice", "bob"];
        for (let i = 0; i < 49; i++) {
          const ref: KeyRef = { ...namespaces[i % namespaces.length]!, key: `k${(i * 37) % 101}` };
          const storeId = stores[i % stores.length];
          written.push(storeId === undefined ? ref : inStore(storeId, ref));
        }
        // Written in a scrambled order, so the order listed is the store's doing.
        for (const ref of [...written].reverse()) await store.write(ref, bytes(addressOf(ref)));
        const expected = [...written].sort(compareKeys).map(addressOf);
        expect(new Set(expected).size).toBe(49);

        const all = await walkAllKeys(store, { allStores: true }, 7);
        expect(all.keys.map(addressOf)).toEqual(expected);
        expect(all.pages).toBe(7);
        for (const key of all.keys) expect(key.revision).toBe(reported(1n));

        for (const storeId of ["alice", "bob", "default"]) {
          const one = await walkAllKeys(store, { storeId }, 7);
          expect(one.keys.map(addressOf)).toEqual(expected.filter((a) => a.startsWith(`${storeId}:`)));
          expect(one.keys.every((k) => k.storeId === storeId)).toBe(true);
        }
      });

      it("ends with an empty token when the last page is full", async () => {
        for (let i = 0; i < 4; i++) await store.write(at(NS, `k${i}`), bytes("v"));
        const first = await store.listAllKeys({ limit: 2 });
        expect(first.keys).toHaveLength(2);
        expect(first.nextPageToken).not.toBe("");
        const second = await store.listAllKeys({ limit: 2, pageToken: first.nextPageToken });
        expect(second.keys.map((k) => k.key)).toEqual(["k2", "k3"]);
        expect(second.nextPageToken).toBe("");
      });

      it("lists no keys for an empty store", async () => {
        expect(await store.listAllKeys()).toEqual({ keys: [], nextPageToken: "" });
        expect(await store.listAllKeys({ allStores: true })).toEqual({ keys: [], nextPageToken: "" });
      });
    });

    describe.skipIf(options.highestVersionUnknown)("highestVersion", () => {
      itVersioned("is at least the highest version ever applied, even after removes", async () => {
        await store.write(at(NS, "a"), bytes("v"), { version: v(5n) });
        await store.write(at(NS, "b"), bytes("v"), { version: v(200n) });
        await store.write(inStore("alice", at(NS, "c")), bytes("v"), { version: v(120n) });
        expect(await store.highestVersion()).toBeGreaterThanOrEqual(v(200n));
        // A stale mutation does not lower it; removing the key that held it does not either.
        await store.write(at(NS, "b"), bytes("stale"), { version: v(50n) });
        await store.remove(at(NS, "b"));
        expect(await store.highestVersion()).toBeGreaterThanOrEqual(v(200n));
        await store.remove(at(NS, "a"), { version: v(300n) });
        expect(await store.highestVersion()).toBeGreaterThanOrEqual(v(300n));
        await store.txn({ checks: [], operations: [{ ...at(NS, "t"), kind: "write", value: bytes("v") }], version: v(400n) });
        const highest = await store.highestVersion();
        expect(highest).toBeGreaterThanOrEqual(v(400n));
        if (options.durable) {
          store = await harness.reopen!();
          expect(await store.highestVersion()).toBeGreaterThanOrEqual(highest);
        }
      });

      if (!versioned) {
        it("is 0 (unknown) when the store keeps no versions", async () => {
          await store.write(at(NS, "a"), bytes("v"), { version: v(200n) });
          expect(await store.highestVersion()).toBe(0n);
        });
      }
    });

    describe("validation (contract §1)", () => {
      const bad: Array<[string, KeyRef]> = [
        ["empty key", at(NS, "")],
        ["slash in key", at(NS, "a/b")],
        ["space in namespace", at({ primaryNamespace: "a b", secondaryNamespace: "" }, "k")],
        ["121-character key", at(NS, "k".repeat(121))],
        ["secondary without primary", at({ primaryNamespace: "", secondaryNamespace: "s" }, "k")],
      ];
      for (const [what, ref] of bad) {
        it(`rejects ${what} in every operation and changes nothing`, async () => {
          const errors = await Promise.all([
            errorOf(store.write(ref, bytes("v"))),
            errorOf(store.read(ref)),
            errorOf(store.remove(ref)),
            errorOf(store.txn({ checks: [], operations: [{ ...ref, kind: "write", value: bytes("v") }] })),
          ]);
          for (const error of errors) expect(error.code).toBe("invalid-argument");
          if (ref.key !== "" && !ref.key.includes("/") && ref.key.length <= 120) {
            expect((await errorOf(store.list(ref))).code).toBe("invalid-argument");
          }
          expect(await store.list(NS)).toEqual([]);
          expect(await store.listAllKeys({ allStores: true })).toEqual({ keys: [], nextPageToken: "" });
        });
      }

      it("accepts 120-character names", async () => {
        const long = "x".repeat(120);
        const ref = at({ primaryNamespace: long, secondaryNamespace: long }, long);
        await store.write(ref, bytes("v"));
        expect(await store.list(ref)).toEqual([long]);
      });
    });

    describe("mutations without a caller version (contract §3.1)", () => {
      /** A mutation without a caller version, as this store takes one: a backend gets a low proposal. */
      const plain = (onVersion?: (version: bigint) => void) =>
        options.assignsVersions ? { ...(onVersion && { onVersion }) } : { version: 1n, plain: true, ...(onVersion && { onVersion }) };

      itVersioned("applies after whatever the key holds, at its stored version + 1, and reports that version", async () => {
        await store.write(at(NS, "k"), bytes("ahead"), { version: v(100n) });
        let reportedVersion: bigint | undefined;
        expect(await store.write(at(NS, "k"), bytes("plain"), plain((version) => (reportedVersion = version)))).toBe("applied");
        expect(text(await store.read(at(NS, "k")))).toBe("plain");
        expect(await store.readVersioned(at(NS, "k"))).toMatchObject({ version: v(100n) + 1n, revision: 2n });
        expect(reportedVersion).toBe(v(100n) + 1n);
        // A later caller version below it is stale; above it applies.
        expect(await store.write(at(NS, "k"), bytes("late"), { version: v(100n) + 1n })).toBe("stale");
        expect(await store.write(at(NS, "k"), bytes("later"), { version: v(102n) })).toBe("applied");
        expect(await store.remove(at(NS, "k"), plain())).toBe("applied");
        await expect(store.read(at(NS, "k"))).rejects.toMatchObject({ code: "not-found" });
      });

      itAtomicVersionedTxn("applies every operation of a Txn without a version, each after what its key holds", async () => {
        await store.write(at(NS, "a"), bytes("ahead"), { version: v(200n) });
        const result = succeeded(
          await store.txn({
            checks: [],
            operations: [
              { ...at(NS, "a"), kind: "write", value: bytes("A") },
              { ...at(NS, "b"), kind: "write", value: bytes("B") },
            ],
            ...(options.assignsVersions ? {} : { version: 1n, plain: true }),
          }),
        );
        expect(result.outcomes).toEqual(["applied", "applied"]);
        expect((await store.readVersioned(at(NS, "a"))).version).toBe(v(200n) + 1n);
        expect(result.versions[0]).toBe(v(200n) + 1n);
      });
    });

    describe("usage and quotas, decided by the store (contract §6.3)", () => {
      const usageReader = (): (KVStore & StoreUsageReader) | undefined => (isStoreUsageReader(store) ? store : undefined);
      const itUsage = (title: string, test: (reader: KVStore & StoreUsageReader) => Promise<void>): void => {
        it(title, async (context) => {
          const reader = usageReader();
          if (reader === undefined) return context.skip();
          await test(reader);
        });
      };
      const alice = (key: string): KeyRef => inStore("alice", at(NS, key));

      itUsage("keeps usage exact through writes, overwrites and removes, and a recount finds no drift", async (reader) => {
        await reader.write(alice("a"), bytes("12345"));
        await reader.write(alice("b"), bytes("12"));
        await reader.write(alice("a"), bytes("1"));
        await reader.remove(alice("b"));
        await reader.remove(alice("never"));
        await reader.write(at(NS, "other"), bytes("not alice's"));
        expect(await reader.storeUsage("alice")).toEqual({ keys: 1, bytes: 1 });
        expect(await reader.recountUsage("alice")).toEqual({ recorded: { keys: 1, bytes: 1 }, counted: { keys: 1, bytes: 1 } });
        expect(await reader.storeUsage("nobody")).toEqual({ keys: 0, bytes: 0 });
      });

      itUsage("refuses growth past maxKeys or maxBytes, changing nothing; overwrites and removes always pass", async (reader) => {
        const quota = { maxKeys: 2, maxBytes: 10 };
        await reader.write(alice("a"), bytes("1234"), { quota });
        await reader.write(alice("b"), bytes("1234"), { quota });
        await expect(reader.write(alice("c"), bytes("1"), { quota })).rejects.toMatchObject({ code: "resource-exhausted", reason: "quota" });
        await expect(reader.write(alice("a"), bytes("1234567"), { quota })).rejects.toMatchObject({ code: "resource-exhausted", reason: "quota" });
        expect(text(await reader.read(alice("a")))).toBe("1234");
        await expect(reader.read(alice("c"))).rejects.toMatchObject({ code: "not-found" });
        expect(await reader.write(alice("a"), bytes("12"), { quota })).toBe("applied");
        expect(await reader.remove(alice("b"), { quota })).toBe("applied");
        expect(await reader.write(alice("c"), bytes("1"), { quota })).toBe("applied");
        expect(await reader.storeUsage("alice")).toEqual({ keys: 2, bytes: 3 });
      });

      itUsage("holds 64 concurrent writers of new keys to the quota exactly", async (reader) => {
        const quota = { maxKeys: 10 };
        const results = await Promise.allSettled(Array.from({ length: 64 }, (_, i) => reader.write(alice(`k${i}`), bytes("v"), { quota })));
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(10);
        for (const r of results) if (r.status === "rejected") expect(r.reason).toMatchObject({ code: "resource-exhausted" });
        expect(await reader.storeUsage("alice")).toEqual({ keys: 10, bytes: 10 });
        expect((await reader.recountUsage("alice")).counted).toEqual({ keys: 10, bytes: 10 });
      });

      if (atomicTxn) {
        itUsage("checks a Txn's operations together and refuses it whole", async (reader) => {
          const write = (key: string) => ({ ...alice(key), kind: "write" as const, value: bytes("v") });
          await expect(reader.txn({ checks: [], operations: [write("a"), write("b"), write("c")], quota: { maxKeys: 2 } })).rejects.toMatchObject({
            code: "resource-exhausted",
          });
          expect(await reader.storeUsage("alice")).toEqual({ keys: 0, bytes: 0 });
          succeeded(await reader.txn({ checks: [], operations: [write("a"), write("b")], quota: { maxKeys: 2 } }));
          expect(await reader.storeUsage("alice")).toEqual({ keys: 2, bytes: 2 });
        });
      }

      describe("usage groups: a VSS user's store ids under one quota", () => {
        /** A key of the VSS store `vss:<user>:<storeId>` (the store ids VSS makes, usage-group.ts). */
        const vss = (user: string, storeId: string, key: string): KeyRef => inStore(`vss:${user}:${storeId}`, at(ROOT, key));
        const quotaError = async (promise: Promise<unknown>): Promise<string> => {
          const error = await errorOf(promise);
          expect([error.code, error.reason]).toEqual(["resource-exhausted", "quota"]);
          return error.message;
        };
        const recounted = async (reader: StoreUsageReader, storeIds: readonly string[]): Promise<{ keys: number; bytes: number }> => {
          let keys = 0;
          let bytes = 0;
          for (const storeId of storeIds) {
            const { recorded, counted } = await reader.recountUsage(storeId);
            expect(recorded).toEqual(counted);
            keys += counted.keys;
            bytes += counted.bytes;
          }
          return { keys, bytes };
        };

        itUsage("holds keys and bytes over all of a user's store ids; other users, look-alike prefixes and plain stores stay apart", async (reader) => {
          const quota = { maxKeys: 4, maxBytes: 20 };
          for (const [storeId, key] of [["s1", "k1"], ["s1", "k2"], ["s2", "k1"], ["s3", "k1"]]) {
            expect(await reader.write(vss("alice", storeId!, key!), bytes("12"), { quota })).toBe("applied");
          }
          expect(await quotaError(reader.write(vss("alice", "s4", "k1"), bytes("1"), { quota }))).toBe(
            "the VSS stores of user alice hold 4 keys; this would make 5 and their quota is 4 keys",
          );
          expect(await quotaError(reader.write(vss("alice", "s1", "k1"), bytes("123456789012345"), { quota }))).toBe(
            "the VSS stores of user alice hold 8 bytes of values; this needs 13 more and their quota is 20 bytes",
          );
          await expect(reader.read(vss("alice", "s4", "k1"))).rejects.toMatchObject({ code: "not-found" });
          // Another user, a user whose name starts with alice's, and plain stores have quotas of their own.
          for (const storeId of ["vss:bob:s1", "vss:alice2:s1", "vss:alic:s1", "alice", "vss:alice"]) {
            for (const key of ["a", "b", "c", "d"]) expect(await reader.write(inStore(storeId, at(ROOT, key)), bytes("1"), { quota })).toBe("applied");
          }
          // A remove in one store id makes room in another; an overwrite that does not grow always passes.
          expect(await reader.remove(vss("alice", "s2", "k1"), { quota })).toBe("applied");
          expect(await reader.write(vss("alice", "s4", "k1"), bytes("1"), { quota })).toBe("applied");
          expect(await reader.write(vss("alice", "s1", "k1"), bytes("12"), { quota: { maxKeys: 0, maxBytes: 0 } })).toBe("applied");
          // Usage stays per store id.
          expect(await reader.storeUsage("vss:alice:s1")).toEqual({ keys: 2, bytes: 4 });
          expect(await recounted(reader, ["vss:alice:s1", "vss:alice:s2", "vss:alice:s3", "vss:alice:s4"])).toEqual({ keys: 4, bytes: 7 });
          // The group's usage: its stores' records summed, and the store ids holding keys (s2 was emptied).
          expect(await reader.groupUsage("vss:alice:s9")).toEqual({ keys: 4, bytes: 7, stores: 3 });
          expect(await reader.groupUsage("vss:alice:")).toEqual({ keys: 4, bytes: 7, stores: 3 });
          expect(await reader.groupUsage("alice")).toEqual({ keys: 4, bytes: 4, stores: 1 });
          expect(await reader.groupUsage("nobody")).toEqual({ keys: 0, bytes: 0, stores: 0 });
        });

        itUsage("caps a user's store ids with maxStores: a new one is refused, the others stay writable, an emptied one frees its place", async (reader) => {
          const quota = { maxStores: 2 };
          await reader.write(vss("alice", "a", "k"), bytes("v"), { quota });
          await reader.write(vss("alice", "b", "k"), bytes("v"), { quota });
          expect(await quotaError(reader.write(vss("alice", "c", "k"), bytes("v"), { quota }))).toBe(
            "the VSS stores of user alice hold keys in 2 store ids; this would make 3 and their quota is 2 store ids",
          );
          expect(await reader.write(vss("alice", "a", "k2"), bytes("v"), { quota })).toBe("applied");
          expect(await reader.write(vss("bob", "c", "k"), bytes("v"), { quota })).toBe("applied");
          await reader.remove(vss("alice", "b", "k"));
          expect(await reader.write(vss("alice", "c", "k"), bytes("v"), { quota })).toBe("applied");
          await expect(reader.read(vss("alice", "b", "k"))).rejects.toMatchObject({ code: "not-found" });
          // Any other store is a group of one.
          expect(await quotaError(reader.write(inStore("carol", at(NS, "k")), bytes("v"), { quota: { maxStores: 0 } }))).toBe(
            "store carol holds keys in 0 store ids; this would make 1 and its quota is 0 store ids",
          );
          expect(await reader.write(inStore("carol", at(NS, "k")), bytes("v"), { quota: { maxStores: 1 } })).toBe("applied");
          expect(await reader.write(inStore("carol", at(NS, "k2")), bytes("v"), { quota: { maxStores: 1 } })).toBe("applied");
        });

        itUsage("holds 64 concurrent writers over 8 store ids of one user to the group's quota exactly", async (reader) => {
          const quota = { maxKeys: 10, maxStores: 8 };
          const results = await Promise.allSettled(Array.from({ length: 64 }, (_, i) => reader.write(vss("alice", `s${i % 8}`, `k${i}`), bytes("v"), { quota })));
          expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(10);
          for (const r of results) if (r.status === "rejected") expect(r.reason).toMatchObject({ code: "resource-exhausted", reason: "quota" });
          expect(await recounted(reader, Array.from({ length: 8 }, (_, i) => `vss:alice:s${i}`))).toEqual({ keys: 10, bytes: 10 });
        });

        if (atomicTxn) {
          itUsage("checks a Txn against its user's whole group and refuses it whole", async (reader) => {
            const write = (storeId: string, key: string) => ({ ...vss("alice", storeId, key), kind: "write" as const, value: bytes("v") });
            succeeded(await reader.txn({ checks: [], operations: [write("s1", "a"), write("s1", "b")], quota: { maxKeys: 3 } }));
            expect(await quotaError(reader.txn({ checks: [], operations: [write("s2", "a"), write("s2", "b")], quota: { maxKeys: 3 } }))).toContain(
              "the VSS stores of user alice hold 2 keys",
            );
            expect(await reader.storeUsage("vss:alice:s2")).toEqual({ keys: 0, bytes: 0 });
            succeeded(await reader.txn({ checks: [], operations: [write("s2", "a")], quota: { maxKeys: 3 } }));
          });

          itUsage("holds a Txn that moves a key into a new store id to maxStores, though its keys do not grow", async (reader) => {
            const write = (storeId: string, key: string) => ({ ...vss("alice", storeId, key), kind: "write" as const, value: bytes("v") });
            const remove = (storeId: string, key: string) => ({ ...vss("alice", storeId, key), kind: "remove" as const });
            const quota = { maxStores: 2 };
            succeeded(await reader.txn({ checks: [], operations: [write("a", "1"), write("a", "2"), write("b", "1")], quota }));
            expect(await quotaError(reader.txn({ checks: [], operations: [remove("a", "1"), write("c", "1")], quota }))).toContain("in 2 store ids; this would make 3");
            // Emptying one store id while filling another keeps the count.
            succeeded(await reader.txn({ checks: [], operations: [remove("b", "1"), write("c", "1")], quota }));
            expect(await reader.groupUsage("vss:alice:")).toEqual({ keys: 3, bytes: 3, stores: 2 });
          });
        }
      });
    });

    if (options.durable) {
      it("keeps data, versions, revisions and stores across close and reopen", async () => {
        await store.write(at(NS, "k"), bytes("durable"), { version: v(9n) });
        await store.write(at(NS, "k"), bytes("durable"), { version: v(10n) });
        await store.write(at(ROOT, "r"), bytes("root"));
        await store.write(inStore("alice", at(ROOT, "r")), bytes("alice's root"));
        const before = await snapshot(store);
        store = await harness.reopen!();
        expect(text(await store.read(at(NS, "k")))).toBe("durable");
        expect(await store.readVersioned(at(NS, "k"))).toMatchObject({ version: reported(v(10n)), revision: reported(2n) });
        expect(await store.list(ROOT)).toEqual(["r"]);
        expect(text(await store.read(inStore("alice", at(ROOT, "r"))))).toBe("alice's root");
        expect(await snapshot(store)).toEqual(before);
      });
    }
  });
}

/** A ledger entry as `store:path@version`, for readable comparisons. */
const owedEntry = (key: KeyVersion): string => `${addressOf(key)}@${key.version}`;

/**
 * The `BackupLedger` contract (contract §4): what `owedToBackup` records in the same commit as the
 * mutation, how it is listed, settled and counted. Only backends that are ledgers call this.
 */
export function describeBackupLedger(name: string, open: () => Promise<StoreUnderTest<KVStore & BackupLedger>>): void {
  describe(`BackupLedger: ${name}`, () => {
    let harness: StoreUnderTest<KVStore & BackupLedger>;
    let store: KVStore & BackupLedger;
    beforeEach(async () => {
      harness = await open();
      store = harness.store;
    });
    afterEach(async () => {
      await harness.close();
    });

    const owed = async (): Promise<string[]> => (await store.listOwed(1000)).map(owedEntry);

    it("starts empty", async () => {
      expect(await store.listOwed(10)).toEqual([]);
      expect(await store.countOwed()).toBe(0);
    });

    it("records a write or remove only when it is owed to the backup", async () => {
      await store.write(at(NS, "plain"), bytes("v"), { version: 1n });
      await store.remove(at(NS, "plain-removed"), { version: 2n });
      expect(await store.countOwed()).toBe(0);
      expect(await store.write(at(NS, "w"), bytes("v"), { version: 5n, owedToBackup: true })).toBe("applied");
      expect(await store.remove(at(NS, "r"), { version: 6n, owedToBackup: true })).toBe("applied");
      await store.write(at(ROOT, "unversioned"), bytes("v"), { owedToBackup: true });
      expect(await store.listOwed(10)).toEqual([
        { storeId: "default", primaryNamespace: "", secondaryNamespace: "", key: "unversioned", version: 0n, revision: 0n },
        { storeId: "default", primaryNamespace: "monitors", secondaryNamespace: "updates", key: "r", version: 6n, revision: 0n },
        { storeId: "default", primaryNamespace: "monitors", secondaryNamespace: "updates", key: "w", version: 5n, revision: 0n },
      ]);
      expect(await store.countOwed()).toBe(3);
      // The mutation itself was applied as usual.
      expect(await store.readVersioned(at(NS, "w"))).toMatchObject({ version: 5n, revision: 1n });
    });

    it("records every key of a txn that succeeded, and none of one that failed", async () => {
      await store.write(at(NS, "a"), bytes("a"));
      const failed = await store.txn({
        checks: [{ ...at(NS, "a"), expect: "absent" }],
        operations: [{ ...at(NS, "b"), kind: "write", value: bytes("b") }],
        version: 7n,
        owedToBackup: true,
      });
      expect(failed).toEqual({ succeeded: false, failedCheck: 0 });
      expect(await store.countOwed()).toBe(0);
      const result = await store.txn({
        checks: [{ ...at(NS, "a"), expect: "present" }],
        operations: [
          { ...at(NS, "b"), kind: "write", value: bytes("b") },
          { ...at(NS, "a"), kind: "remove" },
          { ...inStore("alice", at(NS, "a")), kind: "write", value: bytes("alice") },
        ],
        version: 8n,
        owedToBackup: true,
      });
      expect(result.succeeded).toBe(true);
      expect(await owed()).toEqual(["alice:monitors/updates/a@8", "default:monitors/updates/a@8", "default:monitors/updates/b@8"]);
      expect(await store.countOwed()).toBe(3);
    });

    it("keeps the highest version recorded for a key", async () => {
      const k = at(NS, "k");
      await store.write(k, bytes("1"), { version: 5n, owedToBackup: true });
      await store.write(k, bytes("2"), { version: 9n, owedToBackup: true });
      expect(await owed()).toEqual(["default:monitors/updates/k@9"]);
      // A stale mutation may be recorded again, but never lowers what is owed.
      await store.write(k, bytes("stale"), { version: 7n, owedToBackup: true });
      expect(await owed()).toEqual(["default:monitors/updates/k@9"]);
      expect(await store.countOwed()).toBe(1);
    });

    it("lists owed keys in (store, primary, secondary, key) order, paged with `after`", async () => {
      const refs: KeyRef[] = [];
      for (const storeId of ["bob", "default", "alice"]) {
        for (const ns of [NS, ROOT, { primaryNamespace: "monitors", secondaryNamespace: "" }]) {
          for (const key of ["z", "a", "m"]) refs.push(inStore(storeId, at(ns, key)));
        }
      }
      for (const [i, ref] of refs.entries()) {
        await store.write(ref, bytes("v"), { version: BigInt(i + 1), owedToBackup: true });
      }
      const expected = [...refs].sort(compareKeys).map(addressOf);
      expect((await store.listOwed(1000)).map(addressOf)).toEqual(expected);

      const walked: KeyVersion[] = [];
      let after: KeyRef | undefined;
      for (let pages = 0; pages < 100; pages++) {
        const page = await store.listOwed(4, after);
        expect(page.length).toBeLessThanOrEqual(4);
        walked.push(...page);
        if (page.length < 4) break;
        after = page.at(-1);
      }
      expect(walked.map(addressOf)).toEqual(expected);
      for (const key of walked) {
        expect(key.version).toBe(BigInt(refs.findIndex((r) => addressOf(r) === addressOf(key)) + 1));
      }
      // `after` need not be an owed key itself.
      const fromMiddle = await store.listOwed(2, inStore("bob", at(ROOT, "b")));
      expect(fromMiddle.map(addressOf)).toEqual(["bob://m", "bob://z"]);
      expect(await store.countOwed()).toBe(27);
    });

    it("settles a key only up to the version given", async () => {
      const k = at(NS, "k");
      const other = inStore("alice", at(NS, "k"));
      await store.write(k, bytes("v"), { version: 5n, owedToBackup: true });
      await store.write(other, bytes("v"), { version: 5n, owedToBackup: true });
      await store.settleOwed(k, 4n);
      expect(await owed()).toEqual(["alice:monitors/updates/k@5", "default:monitors/updates/k@5"]);
      await store.settleOwed(k, 5n);
      expect(await owed()).toEqual(["alice:monitors/updates/k@5"]);
      expect(await store.countOwed()).toBe(1);

      // Recorded again by a later mutation while the backup was catching up on an earlier one.
      await store.write(k, bytes("v"), { version: 12n, owedToBackup: true });
      await store.settleOwed(k, 5n);
      expect(await owed()).toEqual(["alice:monitors/updates/k@5", "default:monitors/updates/k@12"]);
      await store.settleOwed(k, 20n);
      await store.settleOwed(other, 5n);
      expect(await owed()).toEqual([]);
      expect(await store.countOwed()).toBe(0);
      // Settling what is not owed is harmless, and leaves the data alone.
      await store.settleOwed(at(NS, "never"), 1n);
      expect(await store.readVersioned(k)).toMatchObject({ version: 12n, revision: 2n });
    });

    it("settles an unversioned record with version 0", async () => {
      await store.write(at(NS, "k"), bytes("v"), { owedToBackup: true });
      await store.settleOwed(at(NS, "k"), 0n);
      expect(await store.countOwed()).toBe(0);
    });

    it("keeps the ledger across close and reopen (durable backends)", async (context) => {
      if (harness.reopen === undefined) context.skip();
      await store.write(at(NS, "a"), bytes("v"), { version: 3n, owedToBackup: true });
      await store.remove(inStore("bob", at(ROOT, "b")), { version: 4n, owedToBackup: true });
      await store.write(at(NS, "settled"), bytes("v"), { version: 5n, owedToBackup: true });
      await store.settleOwed(at(NS, "settled"), 5n);
      store = await harness.reopen!();
      expect(await owed()).toEqual(["bob://b@4", "default:monitors/updates/a@3"]);
      expect(await store.countOwed()).toBe(2);
    });
  });
}

/**
 * The change log (contract §9): every backend that keeps one, and the tiered store over it. A
 * store's sequences start at 1, grow by one per change in commit order, and never repeat.
 */
export function describeChangeLog(name: string, open: () => Promise<StoreUnderTest<KVStore & ChangeLog>>): void {
  describe(`ChangeLog: ${name}`, () => {
    let harness: StoreUnderTest<KVStore & ChangeLog>;
    let store: KVStore & ChangeLog;
    beforeEach(async () => {
      harness = await open();
      store = harness.store;
    });
    afterEach(async () => {
      await harness.close();
    });

    const bytes = (value: string): Uint8Array => new TextEncoder().encode(value);
    const at = (key: string, storeId = "alice"): KeyRef => ({ storeId, primaryNamespace: "p", secondaryNamespace: "s", key });
    const all = async (storeId = "alice", values = false): Promise<Change[]> =>
      (await store.readChanges({ storeId, from: 1n, limit: 1000, values })).changes;
    const brief = (change: Change): string => `${change.seq} ${change.kind} ${change.key} v${change.version} r${change.revision} ${change.size}`;

    it("numbers each store's writes and removes 1, 2, 3... with their versions, revisions and sizes", async () => {
      await store.write(at("a"), bytes("one"), { version: 10n });
      await store.write(at("a"), bytes("three"), { version: 11n });
      await store.write(at("b"), bytes("x"), { version: 12n });
      await store.remove(at("a"), { version: 13n });
      await store.write(at("z", "bob"), bytes("bobs"), { version: 14n });
      expect((await all()).map(brief)).toEqual(["1 put a v10 r1 3", "2 put a v11 r2 5", "3 put b v12 r1 1", "4 remove a v13 r0 0"]);
      expect((await all("bob")).map(brief)).toEqual(["1 put z v14 r1 4"]);
      const page = await store.readChanges({ storeId: "alice", from: 3n, limit: 1, values: true });
      expect(page.changes.map(brief)).toEqual(["3 put b v12 r1 1"]);
      expect(page.latest).toBe(4n);
      expect(page.oldest).toBe(1n);
      expect(text(page.changes[0]!.value!)).toBe("x");
      expect(page.changes[0]!.storeId).toBe("alice");
      expect(Math.abs(page.changes[0]!.time - Date.now())).toBeLessThan(60_000);
      expect((await all("alice", false))[0]!.value).toBeUndefined();
      expect(await store.changeHeads()).toEqual(new Map([["alice", 4n], ["bob", 1n]]));
    });

    it("gives a put's value while its key holds it; a put replaced since is superseded, without a value", async () => {
      await store.write(at("a"), bytes("first"));
      await store.write(at("a"), bytes("second"));
      await store.write(at("b"), bytes("bee"));
      await store.remove(at("b"));
      const changes = await all("alice", true);
      expect(changes.map((change) => [change.kind, change.value === undefined ? undefined : new TextDecoder().decode(change.value), change.superseded])).toEqual([
        ["put", undefined, true],
        ["put", "second", undefined],
        ["put", undefined, true],
        ["remove", undefined, undefined],
      ]);
      expect((await all("alice", false)).every((change) => change.value === undefined && change.superseded === undefined)).toBe(true);
    });

    it("logs nothing for what changed nothing: a stale mutation, a remove of an absent key, a failed txn", async () => {
      await store.write(at("a"), bytes("new"), { version: 20n });
      expect(await store.write(at("a"), bytes("old"), { version: 19n })).toBe("stale");
      await store.remove(at("never"));
      const failed = await store.txn({ checks: [{ ...at("a"), expect: "absent" }], operations: [{ ...at("b"), kind: "write", value: bytes("b") }] });
      expect(failed.succeeded).toBe(false);
      expect((await all()).map(brief)).toEqual(["1 put a v20 r1 3"]);
    });

    it("logs a txn's operations in request order, with the versions they got", async () => {
      await store.write(at("gone"), bytes("g"));
      const result = await store.txn({
        checks: [],
        operations: [
          { ...at("b"), kind: "write", value: bytes("bb") },
          { ...at("gone"), kind: "remove" },
          { ...at("a"), kind: "write", value: bytes("a") },
        ],
        version: 30n,
      });
      expect(result.succeeded).toBe(true);
      expect((await all()).map((change) => `${change.seq} ${change.kind} ${change.key} v${change.version}`)).toEqual([
        "1 put gone v0",
        "2 put b v30",
        "3 remove gone v30",
        "4 put a v30",
      ]);
    });

    it("applies an exact txn (a follower's batch) at exactly the given versions and revisions, lower ones included, and logs them so", async () => {
      await store.write(at("a"), bytes("newer"), { version: 50n });
      await store.write(at("gone"), bytes("g"), { version: 51n });
      const result = await store.txn({
        checks: [],
        exact: true,
        operations: [
          { ...at("a"), kind: "write", value: bytes("older"), version: 40n, revision: 7n },
          { ...at("gone"), kind: "remove", version: 45n },
          { ...at("new"), kind: "write", value: bytes("n"), version: 41n, revision: 3n },
          // Neither version nor revision: both 0 (unknown), as an exact write stores them.
          { ...at("position", "bob"), kind: "write", value: bytes("12") },
        ],
      });
      expect(result).toMatchObject({ succeeded: true, outcomes: ["applied", "applied", "applied", "applied"], versions: [40n, 45n, 41n, 0n] });
      expect(await store.readVersioned(at("a"))).toMatchObject({ version: 40n, revision: 7n });
      expect(text((await store.readVersioned(at("a"))).value)).toBe("older");
      expect((await errorOf(store.read(at("gone")))).code).toBe("not-found");
      expect(await store.readVersioned(at("new"))).toMatchObject({ version: 41n, revision: 3n });
      expect(await store.readVersioned(at("position", "bob"))).toMatchObject({ version: 0n, revision: 0n });
      expect((await all()).map(brief).slice(2)).toEqual(["3 put a v40 r7 5", "4 remove gone v45 r0 0", "5 put new v41 r3 1"]);
      expect((await all("bob")).map(brief)).toEqual(["1 put position v0 r0 2"]);
    });

    it("gives concurrent mutations distinct sequences with no gap, each matching what was applied", async () => {
      await Promise.all(Array.from({ length: 50 }, (_, i) => store.write(at(`k${i % 7}`), bytes(`v${i}`))));
      const changes = await all("alice", true);
      expect(changes.map((change) => change.seq)).toEqual(Array.from({ length: 50 }, (_, i) => BigInt(i + 1)));
      // The last change of each key holds its current value and revision.
      const last = new Map(changes.map((change) => [change.key, change]));
      for (const [key, change] of last) {
        const stored = await store.readVersioned(at(key));
        expect([text(change.value!), change.revision]).toEqual([text(stored.value), stored.revision]);
      }
    });

    it("prunes by count and by age, and reports the oldest kept sequence", async () => {
      for (let i = 0; i < 10; i++) await store.write(at(`k${i}`), bytes("v"));
      await store.write(at("k0", "bob"), bytes("v"));
      expect(await store.pruneChanges({ maxCount: 4 }, 1000)).toBe(6);
      const page = await store.readChanges({ storeId: "alice", from: 1n, limit: 100, values: false });
      expect([page.oldest, page.latest]).toEqual([7n, 10n]);
      expect(page.changes.map((change) => change.seq)).toEqual([7n, 8n, 9n, 10n]);
      // Everything is older than an hour from now.
      expect(await store.pruneChanges({ maxAgeMs: 1000 }, 1000, Date.now() + 3_600_000)).toBe(5);
      const empty = await store.readChanges({ storeId: "alice", from: 11n, limit: 100, values: false });
      expect([empty.oldest, empty.latest, empty.changes.length]).toEqual([11n, 10n, 0]);
      // The sequence goes on from where it was, pruned or not.
      await store.write(at("next"), bytes("v"));
      expect((await all()).map((change) => change.seq)).toEqual([11n]);
      expect(await store.changeHeads()).toEqual(new Map([["alice", 11n], ["bob", 1n]]));
    });

    it("tells listeners what a commit changed, once it is durable; changes handed over are the log's", async () => {
      const seen: string[][] = [];
      const handed: Change[] = [];
      const stop = store.onChanges((committed) => {
        seen.push([...committed.keys()].sort());
        for (const changes of committed.values()) handed.push(...(changes ?? []));
      });
      await store.write(at("a"), bytes("v"));
      await store.txn({ checks: [], operations: [{ ...at("b", "bob"), kind: "write", value: bytes("v") }, { ...at("c"), kind: "write", value: bytes("v") }] });
      await store.remove(at("a"));
      stop();
      await store.write(at("after"), bytes("v"));
      expect(seen.flat().sort()).toEqual(["alice", "alice", "alice", "bob"]);
      expect(seen.every((stores) => stores.length > 0)).toBe(true);
      // A backend that hands changes over hands exactly what the log holds (without values).
      for (const change of handed) {
        const page = await store.readChanges({ storeId: change.storeId, from: change.seq, limit: 1, values: false });
        expect(change).toEqual(page.changes[0]);
      }
    });

    it("keeps the log and the sequence across close and reopen (durable backends)", async (context) => {
      if (harness.reopen === undefined) return context.skip();
      await store.write(at("a"), bytes("v"));
      await store.remove(at("a"));
      store = await harness.reopen();
      await store.write(at("b"), bytes("v"));
      expect((await all()).map(brief)).toEqual(["1 put a v0 r1 1", "2 remove a v0 r0 0", "3 put b v0 r1 1"]);
    });
  });
}
