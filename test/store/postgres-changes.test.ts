// The PostgreSQL change log (issue 21) beyond the shared ChangeLog section: every statement that
// changes tierkv_kv logs what it changed, a key changed twice in one transaction logs each change
// (the replaced puts superseded), pruning keeps logs gap-free, and two instances (two pools) on one database
// number one store's changes in commit order while a reader tails it.
import { describe, expect, it } from "vitest";
import { openPostgresStore, type PostgresStore } from "../../src/store/postgres.js";
import { storeIdOf, type Change, type KeyRef, type TxnOperation } from "../../src/store/types.js";
import { usePostgres } from "../support/postgres.js";
import { addressOf, snapshot, text, type SnapshotEntry } from "../support/store-assertions.js";

const postgres = usePostgres();

const bytes = (value: string): Uint8Array => new TextEncoder().encode(value);
const at = (key: string, storeId = "alice"): KeyRef => ({ storeId, primaryNamespace: "p", secondaryNamespace: "s", key });
const brief = (change: Change): string => `${change.seq} ${change.kind} ${change.key} v${change.version} r${change.revision} ${change.size}`;

/** Runs `body` with `count` stores (each its own pool: an "instance") on one fresh database. */
async function withInstances<T>(count: number, body: (stores: PostgresStore[], uri: string) => Promise<T>, query = ""): Promise<T> {
  const uri = await postgres().createDatabase();
  const stores: PostgresStore[] = [];
  try {
    for (let i = 0; i < count; i++) stores.push(await openPostgresStore(`${uri}${query}`));
    return await body(stores, uri);
  } finally {
    await Promise.all(stores.map((store) => store.close()));
  }
}

/** A store's whole log, with values, paged. */
async function logOf(store: PostgresStore, storeId: string): Promise<Change[]> {
  const changes: Change[] = [];
  for (let from = 1n; ; ) {
    const page = await store.readChanges({ storeId, from, limit: 100, values: true });
    changes.push(...page.changes);
    if (page.changes.length === 0) return changes;
    from = page.changes.at(-1)!.seq + 1n;
  }
}

/** What replaying `changes` from an empty store gives, as `snapshot` shows a store. */
function replay(changes: readonly Change[]): SnapshotEntry[] {
  const state = new Map<string, SnapshotEntry>();
  for (const change of changes) {
    const address = addressOf(change);
    if (change.kind === "remove") state.delete(address);
    // A superseded put's value is gone from the key; a later change of the key follows.
    else state.set(address, { address, version: change.version, revision: change.revision, value: change.superseded ? "superseded" : Buffer.from(change.value!).toString("hex") });
  }
  return [...state.values()].sort((a, b) => (a.address < b.address ? -1 : 1));
}

/** The log of `storeId` numbers 1, 2, 3… with no gap and, replayed, gives exactly what the store holds. */
async function expectLogReplaysToData(store: PostgresStore, storeId: string): Promise<Change[]> {
  const changes = await logOf(store, storeId);
  expect(changes.map((change) => change.seq)).toEqual(changes.map((_, i) => BigInt(i + 1)));
  const stored = (await snapshot(store)).filter((entry) => entry.address.startsWith(`${storeId}:`));
  expect(replay(changes)).toEqual(stored);
  return changes;
}

describe("postgres change log: every statement that changes a key logs it", () => {
  it("logs lone, multi-row (plain, revisions, ledger), large, exact, quota'd, lazy and txn mutations, and nothing for what changed nothing", async () => {
    // One connection: the mutations of a turn share one transaction (and multi-row statements).
    await withInstances(1, async ([store]) => {
      const s = store!;
      // A lone versioned write (one statement, committed alone, logged in it) and a stale one.
      await s.write(at("lone"), bytes("1"), { version: 10n });
      expect(await s.write(at("lone"), bytes("old"), { version: 9n })).toBe("stale");
      // Multi-row statements committed alone: versioned, plain, with revisions; one row stale.
      await Promise.all(["m1", "m2", "m3"].map((key) => s.write(at(key), bytes(key), { version: 20n })));
      await Promise.all(["m1", "m2", "m3"].map((key) => s.write(at(key), bytes(`${key}p`), { version: 1n, plain: true })));
      await Promise.all(["r1", "r2"].map((key) => s.write(at(key), bytes(key), { version: 30n, revision: 7n })));
      const mixed = await Promise.all([s.write(at("m1"), bytes("stale"), { version: 2n }), s.write(at("m4"), bytes("m4"), { version: 2n })]);
      expect(mixed).toEqual(["stale", "applied"]);
      // Multi-row with the ledger (logged at the end of its transaction), and a value too large for it.
      await Promise.all(["o1", "o2"].map((key) => s.write(at(key), bytes(key), { version: 40n, owedToBackup: true })));
      await Promise.all([s.write(at("big"), new Uint8Array(20_000).fill(7), { version: 41n }), s.write(at("small"), bytes("s"), { version: 41n })]);
      // Exact copies (a repair or migration): a write and a remove at the source's versions.
      await s.write(at("lone"), bytes("copy"), { version: 5n, revision: 3n, exact: true });
      await s.remove(at("m4"), { version: 4n, exact: true });
      // Quota'd (locked, checked after the log), lazy, plain and unversioned removes; absent keys.
      await s.write(at("q"), bytes("q"), { version: 50n, quota: { maxKeys: 100 } });
      await s.remove(at("m1"), { lazy: true });
      await s.remove(at("m2"), { version: 1n, plain: true });
      await s.remove(at("never"));
      await s.remove(at("never"), { version: 60n });
      // A txn over three stores, one only checked (a placeholder), one a remove of an absent key.
      const txn = await s.txn({
        checks: [{ ...at("c", "zed"), expect: "absent" }],
        operations: [
          { ...at("t", "bob"), kind: "write", value: bytes("tb") },
          { ...at("m3"), kind: "remove" },
          { ...at("absent", "bob"), kind: "remove" },
          { ...at("t"), kind: "write", value: bytes("ta") },
        ],
        version: 70n,
      });
      expect(txn.succeeded).toBe(true);

      const changes = await expectLogReplaysToData(s, "alice");
      const last = new Map(changes.map((change) => [change.key, brief(change).replace(/^\d+ /, "")]));
      expect(Object.fromEntries(last)).toEqual({
        lone: "put lone v5 r3 4",
        m1: "remove m1 v0 r0 0",
        m2: "remove m2 v22 r0 0",
        m3: "remove m3 v70 r0 0",
        m4: "remove m4 v4 r0 0",
        r1: "put r1 v30 r7 2",
        r2: "put r2 v30 r7 2",
        o1: "put o1 v40 r1 2",
        o2: "put o2 v40 r1 2",
        big: "put big v41 r1 20000",
        small: "put small v41 r1 1",
        q: "put q v50 r1 1",
        t: "put t v70 r1 2",
      });
      // Each applied change once: lone, m 3 + 3, r 2, m4, o 2, big and small, 2 exact copies, q, 2 removes, the txn's 2.
      expect(changes).toHaveLength(1 + 3 + 3 + 2 + 1 + 2 + 2 + 2 + 1 + 2 + 2);
      expect((await expectLogReplaysToData(s, "bob")).map(brief)).toEqual(["1 put t v70 r1 2"]);
      // The checked-only store locked its usage row, but nothing of it is logged.
      expect(await s.changeHeads()).toEqual(new Map([["alice", BigInt(changes.length)], ["bob", 1n]]));
    }, "?pool_max=1");
  });

  it("logs each change when one transaction changes a key more than once; the replaced puts are superseded", async () => {
    // One connection: the whole turn's mutations share one transaction.
    await withInstances(
      1,
      async ([store]) => {
        const outcomes = await Promise.all([
          store!.write(at("k"), bytes("first"), { version: 1n }),
          store!.write(at("k"), bytes("second"), { version: 2n }),
          store!.write(at("k"), bytes("stale"), { version: 1n }),
          store!.write(at("gone"), bytes("briefly"), { version: 1n }),
          store!.remove(at("gone"), { version: 2n }),
          store!.write(at("k"), bytes("third"), { version: 3n }),
        ]);
        expect(outcomes).toEqual(["applied", "applied", "stale", "applied", "applied", "applied"]);
        const changes = await expectLogReplaysToData(store!, "alice");
        expect(changes.map((change) => `${change.key} ${change.kind} ${change.value === undefined ? "-" : text(change.value)}`).sort()).toEqual([
          "gone put -",
          "gone remove -",
          "k put -",
          "k put -",
          "k put third",
        ]);
      },
      "?pool_max=1",
    );
  });
});

describe("postgres change log: reading and pruning", () => {
  it("ends a page of values at maxBytes (one change at least), and never without values", async () => {
    await withInstances(1, async ([store]) => {
      for (let i = 0; i < 5; i++) await store!.write(at(`k${i}`), new Uint8Array(100));
      const read = async (values: boolean, maxBytes: number): Promise<bigint[]> =>
        (await store!.readChanges({ storeId: "alice", from: 2n, limit: 10, values, maxBytes })).changes.map((change) => change.seq);
      expect(await read(true, 250)).toEqual([2n, 3n, 4n]);
      expect(await read(true, 200)).toEqual([2n, 3n]);
      expect(await read(true, 1)).toEqual([2n]);
      expect(await read(false, 1)).toEqual([2n, 3n, 4n, 5n]);
    });
  });

  it("prunes at most the limit, oldest first, leaving every store's log a gap-free suffix; ages go by the database's clock", async () => {
    await withInstances(1, async ([store]) => {
      const s = store!;
      const tick = (): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, 3));
      // Each round a few milliseconds after the last: commit times order the rounds.
      for (let i = 0; i < 6; i++) {
        await s.write(at(`k${i}`), bytes("v"));
        await s.write(at(`k${i}`, "bob"), bytes("v"));
        await tick();
      }
      expect(await s.pruneChanges({ maxCount: 2 }, 5)).toBe(5);
      const oldest = async (storeId: string): Promise<bigint[]> => {
        const page = await s.readChanges({ storeId, from: 1n, limit: 100, values: false });
        expect(page.changes.map((change) => change.seq)).toEqual(page.changes.map((_, i) => page.oldest + BigInt(i)));
        expect(page.changes.at(-1)?.seq ?? page.oldest - 1n).toBe(page.latest);
        return [page.oldest, page.latest];
      };
      // Interleaved writes: the five oldest are alice 1–3 and bob 1–2.
      expect([await oldest("alice"), await oldest("bob")]).toEqual([
        [4n, 6n],
        [3n, 6n],
      ]);
      expect(await s.pruneChanges({ maxCount: 2 }, 100)).toBe(3);
      // Without `now` the database's clock decides: nothing is an hour old, everything is older than 0 ms.
      expect(await s.pruneChanges({ maxAgeMs: 3_600_000 }, 100)).toBe(0);
      await tick();
      expect(await s.pruneChanges({ maxAgeMs: 0, maxCount: 1 }, 100)).toBe(4);
      expect([await oldest("alice"), await oldest("bob")]).toEqual([
        [7n, 6n],
        [7n, 6n],
      ]);
      expect(await s.pruneChanges({}, 100)).toBe(0);
    });
  });
});

describe("postgres change log: two instances on one database", () => {
  /** Writers, and the reader that tails alice's log through both instances while they write. */
  const WRITERS = 16;
  const OPERATIONS = 30;
  const KEYS = 12;

  it("numbers one store's changes in commit order: a reader polling from its cursor sees each sequence once, in order, with no gap", async () => {
    // Small pools: the writers' mutations queue, so turns share transactions and multi-row statements.
    await withInstances(2, async (instances) => {
      const random = (n: number): number => Math.floor(Math.random() * n);
      /** Every put that was applied, by store: its value is unique, so the log must hold each exactly once. */
      const applied = new Map<string, string[]>();
      const appliedPut = (ref: KeyRef, value: string): void => {
        const storeId = storeIdOf(ref);
        applied.set(storeId, [...(applied.get(storeId) ?? []), value]);
      };
      let unique = 0;
      const valueOf = (): { label: string; value: Uint8Array } => {
        const label = `w${unique++}`;
        // Now and then past the multi-row statement's 16 KiB, so batches mix both paths.
        return { label, value: bytes(random(10) === 0 ? label.padEnd(20_000, ".") : label) };
      };
      const alice = (): KeyRef => at(`k${random(KEYS)}`);

      const writer = async (w: number): Promise<void> => {
        for (let n = 0; n < OPERATIONS; n++) {
          const store = instances[(w + n) % 2]!;
          const ref = alice();
          const { label, value } = valueOf();
          const choice = random(8);
          if (choice === 0) {
            // A burst of versioned writes of one turn: multi-row statements, some rows stale.
            const refs = [...new Set(Array.from({ length: 4 }, () => alice().key))].map((key) => at(key));
            const writes = refs.map((key) => ({ key, ...valueOf() }));
            const outcomes = await Promise.all(writes.map((write) => store.write(write.key, write.value, { version: BigInt(random(400)) })));
            writes.forEach((write, i) => outcomes[i] === "applied" && appliedPut(write.key, write.label));
          } else if (choice === 1) {
            if ((await store.write(ref, value, { version: BigInt(random(400)), owedToBackup: random(2) === 0 })) === "applied") appliedPut(ref, label);
          } else if (choice === 2) {
            await store.remove(ref, random(2) === 0 ? { lazy: true } : { version: BigInt(random(400)) });
          } else if (choice === 3) {
            // A txn across stores in a random order (lock order matters), with a placeholder in a
            // store it only checks; now and then a check that fails (nothing logged).
            const others = [at(`k${random(4)}`, "s1"), at(`k${random(4)}`, "s2")];
            const writes = [ref, ...others].map((key) => ({ key, ...valueOf() }));
            const operations: TxnOperation[] = writes.map((write) => ({ ...write.key, kind: "write", value: write.value }));
            if (random(3) === 0) operations.push({ ...at(`k${random(KEYS)}`), kind: "remove" });
            operations.sort(() => Math.random() - 0.5);
            const distinct = [...new Map(operations.map((operation) => [addressOf(operation), operation])).values()];
            const result = await store.txn({
              checks: [{ ...at(`c${random(3)}`, "s3"), expect: random(10) === 0 ? "present" : "absent" }],
              operations: distinct,
              ...(random(2) === 0 && { quota: { maxKeys: 1_000 } }),
            });
            if (result.succeeded) {
              distinct.forEach((operation, i) => {
                const write = writes.find((candidate) => addressOf(candidate.key) === addressOf(operation));
                if (operation.kind === "write" && result.outcomes[i] === "applied") appliedPut(operation, write!.label);
              });
            }
          } else if (choice === 4) {
            await store.write(ref, value, { quota: { maxBytes: 10_000_000 } });
            appliedPut(ref, label);
          } else if (choice === 5) {
            await store.write(ref, value, { version: BigInt(random(400)), revision: BigInt(1 + random(5)), exact: true });
            appliedPut(ref, label);
          } else if (choice === 6) {
            await store.remove(ref, { version: BigInt(random(400)), exact: true });
          } else {
            await store.write(ref, value, random(2) === 0 ? {} : { version: BigInt(random(400)), plain: true });
            appliedPut(ref, label);
          }
        }
      };

      const seen: Change[] = [];
      let writing = true;
      let reads = 0;
      const reader = async (): Promise<void> => {
        let cursor = 1n;
        for (;;) {
          const last = !writing;
          const limit = 1 + random(64);
          const page = await instances[reads++ % 2]!.readChanges({ storeId: "alice", from: cursor, limit, values: true });
          for (const change of page.changes) {
            // A gap here is a change committed after a later sequence was already readable.
            expect(change.seq).toBe(cursor);
            cursor++;
            seen.push(change);
          }
          // The bounds come from the same snapshot: a page that is not full ends at the latest.
          if (page.changes.length < limit) expect(page.latest).toBe(cursor - 1n);
          if (page.changes.length === 0) {
            if (last) return;
            await new Promise((resolve) => setTimeout(resolve, random(3)));
          }
        }
      };

      const tail = reader();
      // Awaited below, once the writers are done; a failure meanwhile is not "unhandled".
      tail.catch(() => undefined);
      await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
      writing = false;
      await tail;

      expect(reads).toBeGreaterThan(10);
      const [one, two] = instances;
      const log = await expectLogReplaysToData(one!, "alice");
      // Values aside: a put the reader saw while current may be superseded by now.
      const bare = (changes: readonly Change[]): unknown[] => changes.map(({ value: _value, superseded: _superseded, ...rest }) => rest);
      expect(bare(seen)).toEqual(bare(log));
      expect((await two!.changeHeads()).get("alice")).toBe(BigInt(log.length));
      for (const storeId of ["alice", "s1", "s2"]) {
        const changes = storeId === "alice" ? log : await expectLogReplaysToData(two!, storeId);
        // One put per applied write; those still current carry their (unique) value.
        const puts = changes.filter((change) => change.kind === "put");
        expect(puts.length).toBe((applied.get(storeId) ?? []).length);
        for (const put of puts.filter((change) => !change.superseded)) expect(applied.get(storeId)).toContain(text(put.value!).replace(/\.+$/, ""));
      }
      // Only checked: locked in order with the others, never logged.
      expect((await one!.changeHeads()).has("s3")).toBe(false);
      // The lock order held across both instances: no deadlock had to be retried.
      expect(one!.retriedTransactions + two!.retriedTransactions).toBe(0);
    }, "?pool_max=4");
  });
});
