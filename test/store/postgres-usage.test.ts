// The PostgreSQL backend's decisions made in the database (issue 17): plain mutations through
// several instances, usage kept by triggers, and quotas checked exactly by two real processes.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface, type Interface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { openPostgresStore, type PostgresStore } from "../../src/store/postgres.js";
import type { KeyRef, StoreUsage } from "../../src/store/types.js";
import { usePostgres } from "../support/postgres.js";
import { errorOf } from "../support/store-assertions.js";

const postgres = usePostgres();
const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

const at = (key: string, storeId?: string): KeyRef => ({ ...(storeId && { storeId }), primaryNamespace: "quota", secondaryNamespace: "", key });
const value = (size: number): Uint8Array => Buffer.alloc(size, 120);

async function open(uri: string): Promise<PostgresStore> {
  const store = await openPostgresStore(uri);
  cleanup.push(() => store.close());
  return store;
}

/** The version each call's onVersion reported, by call. */
function reporter(): { onVersion: (version: bigint) => void; readonly seen: bigint[] } {
  const seen: bigint[] = [];
  return { onVersion: (version) => void seen.push(version), seen };
}

describe("postgres: plain mutations through two instances", () => {
  it("always apply, move past the stored version, and report it", async () => {
    const uri = await postgres().createDatabase();
    const [one, two] = [await open(uri), await open(uri)];
    expect(await one.write(at("k"), value(3), { version: 1000n })).toBe("applied");

    const first = reporter();
    expect(await two.write(at("k"), value(4), { version: 5n, plain: true, onVersion: first.onVersion })).toBe("applied");
    expect(first.seen).toEqual([1001n]);
    expect((await one.readVersioned(at("k"))).version).toBe(1001n);
    // A proposal ahead of the stored version is kept as it is.
    const ahead = reporter();
    await one.write(at("k"), value(4), { version: 5000n, plain: true, onVersion: ahead.onVersion });
    expect(ahead.seen).toEqual([5000n]);

    // A group commit of plain writes (one multi-row statement) behind stored versions.
    await Promise.all(Array.from({ length: 8 }, (_, i) => one.write(at(`g${i}`), value(1), { version: 900n + BigInt(i) })));
    const batch = Array.from({ length: 8 }, () => reporter());
    const outcomes = await Promise.all(batch.map((r, i) => two.write(at(`g${i}`), value(2), { version: 1n, plain: true, onVersion: r.onVersion })));
    expect(outcomes).toEqual(Array(8).fill("applied"));
    expect(batch.map((r) => r.seen)).toEqual(Array.from({ length: 8 }, (_, i) => [901n + BigInt(i)]));

    // A plain remove moves past the removed version; an absent key is applied at the proposal.
    const removed = reporter();
    expect(await two.remove(at("k"), { version: 7n, plain: true, onVersion: removed.onVersion })).toBe("applied");
    expect(removed.seen).toEqual([5001n]);
    expect(await one.highestVersion()).toBeGreaterThanOrEqual(5001n);
    const absent = reporter();
    expect(await one.remove(at("never"), { version: 3n, plain: true, onVersion: absent.onVersion })).toBe("applied");
    expect(absent.seen).toEqual([3n]);
    // Without plain, the same proposal is stale and reports nothing.
    const stale = reporter();
    expect(await one.write(at("g0"), value(1), { version: 2n, onVersion: stale.onVersion })).toBe("stale");
    expect(stale.seen).toEqual([]);
  });

  it("applies a plain Txn past each key's version, with per-operation overrides and the versions applied", async () => {
    const uri = await postgres().createDatabase();
    const [one, two] = [await open(uri), await open(uri)];
    await one.write(at("a"), value(1), { version: 2000n });
    await one.write(at("b"), value(1), { version: 500n });
    const plain = await two.txn({
      checks: [{ ...at("a"), expect: "present" }],
      operations: [
        { ...at("a"), kind: "write", value: value(2) },
        { ...at("b"), kind: "remove" },
        { ...at("c"), kind: "write", value: value(2) },
        { ...at("d"), kind: "write", value: value(2), version: 70n },
      ],
      version: 10n,
      plain: true,
    });
    expect(plain).toEqual({ succeeded: true, outcomes: ["applied", "applied", "applied", "applied"], revisions: [2n, 0n, 1n, 1n], versions: [2001n, 501n, 10n, 70n] });
    expect((await one.readVersioned(at("a"))).version).toBe(2001n);
    expect(await one.highestVersion()).toBeGreaterThanOrEqual(2001n);
    // Versioned (not plain): a stale operation reports the stored version.
    const versioned = await one.txn({ checks: [], operations: [{ ...at("a"), kind: "write", value: value(1) }, { ...at("e"), kind: "write", value: value(1) }], version: 100n });
    expect(versioned).toEqual({ succeeded: true, outcomes: ["stale", "applied"], revisions: [2n, 1n], versions: [2001n, 100n] });
  });
});

describe("postgres: usage kept by the database", () => {
  it("counts every kind of write and remove, and a migration from schema 1 counts what is there", async () => {
    const uri = await postgres().createDatabase();
    const store = await open(uri);
    await store.write(at("a"), value(10), { version: 1n });
    await store.write(at("b"), value(20));
    await Promise.all([store.write(at("c"), value(5), { version: 1n }), store.write(at("d"), value(5), { version: 1n })]);
    await store.write(at("a"), value(3), { version: 5n, exact: true });
    await store.write(at("b"), value(7), { version: 1n, plain: true });
    await store.txn({ checks: [{ ...at("z"), expect: "absent" }], operations: [{ ...at("c"), kind: "remove" }, { ...at("e"), kind: "write", value: value(4) }] });
    await store.remove(at("d"));
    await store.remove(at("absent"));
    await store.write(at("x"), value(9), { version: 1n });
    await store.write(at("other", "tenant2"), value(100));
    expect(await store.storeUsage("default")).toEqual({ keys: 4, bytes: 3 + 7 + 4 + 9 });
    expect(await store.storeUsage("tenant2")).toEqual({ keys: 1, bytes: 100 });
    expect(await store.storeUsage("nobody")).toEqual({ keys: 0, bytes: 0 });
    const recount = await store.recountUsage("default");
    expect(recount.counted).toEqual(recount.recorded);

    // Back to schema 1 (as an older tierkv left it), with data written meanwhile.
    await store.close();
    await postgres().admin(
      `DROP TRIGGER tierkv_usage_keys ON tierkv_kv; DROP TRIGGER tierkv_usage_bytes ON tierkv_kv;
       DROP FUNCTION tierkv_usage_change(); DROP TABLE tierkv_usage; DROP TABLE tierkv_changes; DELETE FROM tierkv_migrations WHERE version >= 2;
       INSERT INTO tierkv_kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
         VALUES ('default', 'quota', '', 'old', '\\x0102', 1, 1);`,
      [],
      uri,
    );
    const migrated = await open(uri);
    expect(await migrated.storeUsage("default")).toEqual({ keys: 5, bytes: 3 + 7 + 4 + 9 + 2 });
    expect(await migrated.storeUsage("tenant2")).toEqual({ keys: 1, bytes: 100 });
  });

  it("stays exact, without deadlocks, when two instances write, overwrite and remove the same keys of two stores at once", async () => {
    const uri = await postgres().createDatabase();
    const [one, two] = [await open(uri), await open(uri)];
    const stores = ["s1", "s2"];
    for (let round = 0; round < 5; round++) {
      await Promise.all(
        [one, two].flatMap((store, n) =>
          Array.from({ length: 120 }, (_, i) => {
            // Overlapping keys of both stores, in different orders per instance.
            const ref = at(`k${(n === 0 ? i : 119 - i) % 40}`, stores[i % 2]);
            if ((i + round) % 5 === 0) return store.remove(ref);
            if ((i + round) % 7 === 0) return store.txn({ checks: [], operations: [{ ...ref, kind: "write", value: value(i % 13) }], quota: { maxKeys: 1000 } });
            return store.write(ref, value((i * 7 + round) % 31), (i + n) % 3 === 0 ? { quota: { maxBytes: 100_000 } } : {});
          }),
        ),
      );
    }
    for (const storeId of stores) {
      const { recorded, counted } = await one.recountUsage(storeId);
      expect(recorded).toEqual(counted);
    }
    expect(one.retriedTransactions + two.retriedTransactions).toBe(0);
  });

  it("refuses a quota'd write or Txn that would pass a limit, changing nothing; shrinking always passes", async () => {
    const uri = await postgres().createDatabase();
    const store = await open(uri);
    await store.write(at("a"), value(60), { quota: { maxKeys: 2, maxBytes: 100 } });
    await store.write(at("b"), value(30), { quota: { maxKeys: 2, maxBytes: 100 } });
    const third = await errorOf(store.write(at("c"), value(1), { quota: { maxKeys: 2 } }));
    expect([third.code, third.reason]).toEqual(["resource-exhausted", "quota"]);
    const bigger = await errorOf(store.write(at("b"), value(41), { quota: { maxBytes: 100 } }));
    expect(bigger.reason).toBe("quota");
    // Same size, smaller, or a stale write: never refused even at the limit.
    await store.write(at("b"), value(40), { quota: { maxKeys: 2, maxBytes: 100 } });
    await store.write(at("a"), value(1), { quota: { maxKeys: 1, maxBytes: 1 } });
    const txn = await errorOf(
      store.txn({ checks: [], operations: ["t1", "t2"].map((key) => ({ ...at(key), kind: "write" as const, value: value(1) })), quota: { maxKeys: 3 } }),
    );
    expect(txn.reason).toBe("quota");
    // A Txn that removes as much as it adds fits.
    const swap = await store.txn({ checks: [], operations: [{ ...at("a"), kind: "remove" }, { ...at("t1"), kind: "write", value: value(1) }], quota: { maxKeys: 2, maxBytes: 41 } });
    expect(swap.succeeded).toBe(true);
    expect(await store.storeUsage("default")).toEqual({ keys: 2, bytes: 41 });
    expect((await store.recountUsage("default")).recorded).toEqual({ keys: 2, bytes: 41 });
  });
});

// -- two real processes --------------------------------------------------------------------------

const CHILD = fileURLToPath(new URL("../support/postgres-quota-child.mjs", import.meta.url));

interface Child {
  run(job: Record<string, unknown>): Promise<string[]>;
}

async function spawnChild(uri: string): Promise<Child> {
  const child: ChildProcess = spawn(process.execPath, [CHILD, uri], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  cleanup.push(async () => {
    child.stdin!.end();
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    child.kill("SIGKILL");
  });
  const lines: Interface = createInterface({ input: child.stdout! });
  const waiting: Array<(line: string) => void> = [];
  lines.on("line", (line) => waiting.shift()?.(line));
  const next = (): Promise<string> =>
    Promise.race([
      new Promise<string>((resolve) => waiting.push(resolve)),
      exited.then(() => Promise.reject(new Error(`child exited: ${stderr}`))),
    ]);
  expect(await next()).toBe("ready");
  return {
    async run(job) {
      const answer = next();
      child.stdin!.write(`${JSON.stringify(job)}\n`);
      return JSON.parse(await answer) as string[];
    },
  };
}

function failure(error: unknown): string {
  const e = error as { code?: string; reason?: string };
  return `${e.code}:${e.reason ?? ""}`;
}

describe("postgres: quotas with two processes on one database", () => {
  it("stores exactly the limit under 64 concurrent writers, refuses a Txn whole, and never drifts", async () => {
    const uri = await postgres().createDatabase();
    const [store, child] = await Promise.all([open(uri), spawnChild(uri)]);
    const keys = (prefix: string): string[] => Array.from({ length: 32 }, (_, i) => `${prefix}${i}`);
    const expectNoDrift = async (): Promise<StoreUsage> => {
      const { recorded, counted } = await store.recountUsage("default");
      expect(recorded).toEqual(counted);
      return counted;
    };

    // maxKeys 10: 32 writers here, 32 there, all at once.
    const quota = { maxKeys: 10 };
    const [here, there] = await Promise.all([
      Promise.all(keys("h").map((key) => store.write(at(key), value(10), { quota }).catch(failure))),
      child.run({ kind: "write", keys: keys("c"), size: 10, quota }),
    ]);
    const results = [...here, ...there];
    expect(results.filter((r) => r === "applied")).toHaveLength(10);
    expect(results.filter((r) => r !== "applied")).toEqual(Array(54).fill("resource-exhausted:quota"));
    expect(await store.storeUsage("default")).toEqual({ keys: 10, bytes: 100 });
    expect(await expectNoDrift()).toEqual({ keys: 10, bytes: 100 });

    // A Txn of 5 new keys under a quota that leaves room for 4 is refused whole.
    const [txn] = await child.run({ kind: "txn", keys: ["t1", "t2", "t3", "t4", "t5"], size: 1, quota: { maxKeys: 14 } });
    expect(txn).toBe("resource-exhausted:quota");
    expect(await store.storeUsage("default")).toEqual({ keys: 10, bytes: 100 });

    // Everything removed from both processes at once (each key twice): never below zero.
    const stored = (await store.list({ primaryNamespace: "quota", secondaryNamespace: "" })).sort();
    await Promise.all([Promise.all(stored.map((key) => store.remove(at(key)))), child.run({ kind: "remove", keys: stored })]);
    expect(await store.storeUsage("default")).toEqual({ keys: 0, bytes: 0 });
    expect(await expectNoDrift()).toEqual({ keys: 0, bytes: 0 });

    // maxBytes 1000 with 100-byte values: exactly 10 fit.
    const bytesQuota = { maxBytes: 1000 };
    const [hereBytes, thereBytes] = await Promise.all([
      Promise.all(keys("H").map((key) => store.write(at(key), value(100), { quota: bytesQuota }).catch(failure))),
      child.run({ kind: "write", keys: keys("C"), size: 100, quota: bytesQuota }),
    ]);
    expect([...hereBytes, ...thereBytes].filter((r) => r === "applied")).toHaveLength(10);
    expect(await store.storeUsage("default")).toEqual({ keys: 10, bytes: 1000 });
    expect(await expectNoDrift()).toEqual({ keys: 10, bytes: 1000 });
    // The lock order held: no deadlock (or serialization failure) was retried here.
    expect(store.retriedTransactions).toBe(0);
  });

  it("recounts in order with concurrent writers of both processes", async () => {
    const uri = await postgres().createDatabase();
    const [store, child] = await Promise.all([open(uri), spawnChild(uri)]);
    const writes = Array.from({ length: 200 }, (_, i) => `w${i}`);
    const recounts: Array<Promise<unknown>> = [];
    await Promise.all([
      Promise.all(writes.slice(0, 100).map((key, i) => store.write(at(key), value(i % 7)))),
      child.run({ kind: "write", keys: writes.slice(100), size: 3 }),
      (async () => {
        for (let i = 0; i < 10; i++) {
          recounts.push(store.recountUsage("default"));
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      })(),
    ]);
    await Promise.all(recounts);
    const { recorded, counted } = await store.recountUsage("default");
    expect(recorded).toEqual(counted);
    expect(counted.keys).toBe(200);
  });
});
