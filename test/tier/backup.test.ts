// TierStore backup tier (contract §4): failures reach the caller and are counted; a healthy backup mirrors primary.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { StoreErrorCode } from "../../src/store/errors.js";
import { MemoryStore } from "../../src/store/memory.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { KVStore, KeyRef } from "../../src/store/types.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { FlakyStore, RecordingStore } from "../support/fault-stores.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { FAST_RETRY, ROOT, at, bytes, errorOf, ns, sorted, text } from "./tier-test-helpers.js";

const KEY = at(ns("monitors"), "chan_1");
const ALWAYS = 1_000_000_000;

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  removeTempDirs();
});

/** A TierStore over a memory primary and `backup`, with fast retries; closed after the test. */
function tierWith(backup: KVStore, primary: KVStore = new MemoryStore()): TierStore {
  const tier = new TierStore({ primary, backup, retry: { primary: FAST_RETRY, backup: FAST_RETRY } });
  closers.push(() => tier.close());
  return tier;
}

/** A backup that fails every call with `code`. */
const failingBackup = (code: StoreErrorCode): FlakyStore => new FlakyStore(new MemoryStore(), ALWAYS, code);

describe("TierStore with a failing backup", () => {
  it("rejects writes and removes with unavailable after retrying, and counts each divergence", async () => {
    const backup = failingBackup("unavailable");
    const primary = new MemoryStore();
    const tier = tierWith(backup, primary);

    const writeError = await errorOf(tier.write(KEY, bytes("v1")));
    expect(writeError.code).toBe("unavailable");
    expect(backup.calls).toBe(FAST_RETRY.maxAttempts);
    expect(tier.snapshot().divergences).toBe(1);
    expect(tier.snapshot().retries).toBe(FAST_RETRY.maxAttempts - 1);
    // The primary took the write: the tiers now differ, which is what the counter reports.
    expect(text(await primary.read(KEY))).toBe("v1");

    const removeError = await errorOf(tier.remove(KEY));
    expect(removeError.code).toBe("unavailable");
    expect(tier.snapshot().divergences).toBe(2);
    expect((await errorOf(primary.read(KEY))).code).toBe("not-found");
  });

  it("reports a non-retryable backup failure as itself, without retrying", async () => {
    const backup = failingBackup("internal");
    const tier = tierWith(backup);
    const error = await errorOf(tier.write(KEY, bytes("v")));
    expect(error.code).toBe("internal");
    expect(backup.calls).toBe(1);
    expect(tier.snapshot().retries).toBe(0);
    expect(tier.snapshot().divergences).toBe(1);
  });

  it("counts a divergence when the primary fails and the backup succeeds", async () => {
    const backupStore = new MemoryStore();
    // The primary answers reads (the write asks it for the key's revision) but fails writes.
    const primary = new FlakyStore(new MemoryStore(), ALWAYS, "unavailable", ["write"]);
    const tier = tierWith(backupStore, primary);
    expect((await errorOf(tier.write(KEY, bytes("v")))).code).toBe("unavailable");
    expect(tier.snapshot().divergences).toBe(1);
    expect(text(await backupStore.read(KEY))).toBe("v");
  });

  it("counts no divergence when every durable tier fails", async () => {
    const tier = tierWith(failingBackup("unavailable"), new FlakyStore(new MemoryStore(), ALWAYS, "unavailable"));
    expect((await errorOf(tier.write(KEY, bytes("v")))).code).toBe("unavailable");
    expect(tier.snapshot().divergences).toBe(0);
  });

  it("lets the caller repair the backup by retrying with the same version once the backup recovers", async () => {
    const backup = failingBackup("unavailable");
    const primary = new MemoryStore();
    const tier = tierWith(backup, primary);
    const version = 7n << 20n;
    await errorOf(tier.write(KEY, bytes("v"), { version }));
    backup.failures = 0;
    await tier.write(KEY, bytes("v"), { version });
    expect(text(await backup.inner.read(KEY))).toBe("v");
    expect(text(await primary.read(KEY))).toBe("v");
  });

  it("answers UNAVAILABLE over gRPC, which the client maps back to unavailable", async () => {
    const tier = new TierStore({
      primary: new MemoryStore(),
      backup: failingBackup("unavailable"),
      retry: { backup: FAST_RETRY },
    });
    const server: TestServer = await startTestServer(tier);
    closers.push(() => server.close());

    const writeError = await errorOf(server.client.write(KEY, bytes("v")));
    expect(writeError.code).toBe("unavailable");
    // Reads never touch the backup: the primary took the write and serves it.
    expect(text(await server.client.read(KEY))).toBe("v");
    const removeError = await errorOf(server.client.remove(KEY));
    expect(removeError.code).toBe("unavailable");
    expect((await errorOf(server.client.read(KEY))).code).toBe("not-found");
    expect(tier.snapshot().divergences).toBe(2);
  });
});

/** A deterministic PRNG (mulberry32), so a failing run can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("TierStore with a healthy sqlite backup", () => {
  it("mirrors 200 mixed writes and removes across three namespaces in the backup", async () => {
    const primary = new MemoryStore();
    const backup = new RecordingStore(new SqliteStore(join(tempDir(), "backup.db")));
    const tier = tierWith(backup, primary);
    const namespaces = [ROOT, ns("monitors"), ns("monitors", "updates")];
    const next = random(20_240_601);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
    const keys: KeyRef[] = namespaces.flatMap((n) => Array.from({ length: 12 }, (_, i) => at(n, `key_${i}`)));
    keys.push(at(ROOT, "network_graph")); // durable: this tier store has no ephemeral tier

    const expected = new Map<string, string>();
    let writes = 0;
    let removes = 0;
    // Batches of 10 run concurrently; the versioned lock applies same-key mutations in call order.
    for (let batch = 0; batch < 20; batch++) {
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < 10; i++) {
        const ref = pick(keys);
        const id = JSON.stringify(ref);
        if (next() < 0.65) {
          const value = `v${batch}_${i}`;
          expected.set(id, value);
          writes++;
          pending.push(tier.write(ref, bytes(value)));
        } else {
          expected.delete(id);
          removes++;
          pending.push(tier.remove(ref));
        }
      }
      await Promise.all(pending);
    }

    expect(backup.of("write")).toHaveLength(writes);
    expect(backup.of("remove")).toHaveLength(removes);
    expect(tier.snapshot().divergences).toBe(0);
    for (const namespace of namespaces) {
      const primaryKeys = sorted(await primary.list(namespace));
      expect(sorted(await backup.inner.list(namespace))).toEqual(primaryKeys);
      const modelKeys = [...expected.keys()]
        .map((id) => JSON.parse(id) as KeyRef)
        .filter((r) => r.primaryNamespace === namespace.primaryNamespace && r.secondaryNamespace === namespace.secondaryNamespace)
        .map((r) => r.key);
      expect(primaryKeys).toEqual(sorted(modelKeys));
    }
    for (const ref of keys) {
      const want = expected.get(JSON.stringify(ref));
      for (const store of [primary, backup.inner]) {
        if (want === undefined) expect((await errorOf(store.read(ref))).code).toBe("not-found");
        else expect(text(await store.read(ref))).toBe(want);
      }
    }
  });
});

describe("degraded backup policy (in process)", () => {
  it("acknowledges from the primary alone only when the backup is unreachable, and records the key", async () => {
    const primary = new MemoryStore();
    const backup = new FlakyStore(new MemoryStore(), Number.MAX_SAFE_INTEGER, "unavailable");
    const tier = new TierStore({ primary, backup, backupPolicy: "degraded", retry: { backup: FAST_RETRY } });
    expect(await tier.write(at(ns("monitors"), "m1"), bytes("v1"))).toBe("applied");
    expect(await tier.remove(at(ns("monitors"), "m2"))).toBe("applied");
    expect(text(await primary.read(at(ns("monitors"), "m1")))).toBe("v1");
    expect(await tier.backupStatus()).toMatchObject({ policy: "degraded", owedKeys: 2 });
    expect((await primary.listOwed(10)).map((k) => k.key)).toEqual(["m1", "m2"]);
    await tier.close();
  });

  it("still fails a write the backup refuses for another reason", async () => {
    const backup = new FlakyStore(new MemoryStore(), Number.MAX_SAFE_INTEGER, "invalid-argument");
    const tier = new TierStore({ primary: new MemoryStore(), backup, backupPolicy: "degraded" });
    expect((await errorOf(tier.write(at(ns("monitors"), "m1"), bytes("v1")))).code).toBe("invalid-argument");
    // The refused mutation stays in the primary's ledger: the replay will repair the backup.
    expect((await tier.backupStatus()).owedKeys).toBe(1);
    await tier.close();
  });
});
