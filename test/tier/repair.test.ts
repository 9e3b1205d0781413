// Repair of the backup (contract §4): the ledger replays what the backup did not confirm, a
// failed copy never leaves the backup with less than it had, and the tiered store owns its
// background work (one resync at a time, none running when the tiers close).
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/store/memory.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { DelayedStore, FlakyStore, type Operation } from "../support/fault-stores.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { FAST_RETRY, at, bytes, errorOf, ns, text } from "./tier-test-helpers.js";

const KEY = at(ns("monitors"), "chan_1");
const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
  removeTempDirs();
});

const until = async (condition: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> => {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe("the primary's ledger", () => {
  it("records a mutation the backup failed (required policy) and replays it once the backup is back", async () => {
    const primary = new SqliteStore(join(tempDir(), "primary.db"));
    const backup = new FlakyStore(new MemoryStore(), 1_000, "unavailable", ["write"]);
    const tier = new TierStore({ primary, backup, retry: { backup: FAST_RETRY }, replayIntervalMs: 20 });
    cleanup.push(() => tier.close());
    const error = await errorOf(tier.write(KEY, bytes("v1")));
    // The caller learns which tier failed and that the primary has it; no address leaks.
    expect(error.code).toBe("unavailable");
    expect(error.message).toBe("the backup tier is unavailable; the primary tier applied it; retrying with the same version is safe");
    expect((await tier.backupStatus()).owedKeys).toBe(1);
    backup.failures = 0;
    await until(async () => (await tier.backupStatus()).owedKeys === 0);
    expect(text(await backup.inner.read(KEY))).toBe("v1");
    expect((await backup.inner.readVersioned(KEY)).version).toBe((await primary.readVersioned(KEY)).version);
  });

  it("survives a restart: a debt recorded before the primary closed is replayed by the next instance", async () => {
    const path = join(tempDir(), "primary.db");
    const backupStore = new MemoryStore();
    const down = new FlakyStore(backupStore, 1_000, "unavailable");
    const first = new TierStore({ primary: new SqliteStore(path), backup: down, backupPolicy: "degraded", retry: { backup: FAST_RETRY } });
    expect(await first.write(KEY, bytes("owed"))).toBe("applied");
    await first.close();

    const second = new TierStore({ primary: new SqliteStore(path), backup: backupStore, replayIntervalMs: 20 });
    cleanup.push(() => second.close());
    expect((await second.backupStatus()).owedKeys).toBe(1);
    await until(async () => (await second.backupStatus()).owedKeys === 0);
    expect(text(await backupStore.read(KEY))).toBe("owed");
  });

  it("settles nothing while the key is in flight: a replay and a new mutation of the key keep their order", async () => {
    const primary = new MemoryStore();
    const backupStore = new MemoryStore();
    const backup = new DelayedStore(backupStore, 5, 15);
    const tier = new TierStore({ primary, backup, replayIntervalMs: 5 });
    cleanup.push(() => tier.close());
    for (let i = 0; i < 30; i++) await tier.write(KEY, bytes(`v${i}`));
    await until(async () => (await tier.backupStatus()).owedKeys === 0);
    expect(text(await backupStore.read(KEY))).toBe("v29");
  });
});

describe("resync", () => {
  it("never leaves the backup with less than it had when a copy fails", async () => {
    const primary = new MemoryStore();
    const backupStore = new MemoryStore();
    // The backup holds a newer version than the primary (a divergence); every copy to it fails.
    await primary.write(KEY, bytes("primary"), { version: 5n });
    await backupStore.write(KEY, bytes("backup's own"), { version: 9n });
    const backup = new FlakyStore(backupStore, 1_000, "unavailable", ["write"]);
    const tier = new TierStore({ primary, backup, retry: { backup: FAST_RETRY } });
    cleanup.push(() => tier.close());
    expect((await errorOf(tier.resync())).code).toBe("unavailable");
    expect(text(await backupStore.read(KEY))).toBe("backup's own");

    backup.failures = 0;
    const progress = await tier.resync();
    expect(progress).toMatchObject({ copied: 1, removed: 0 });
    expect(await backupStore.readVersioned(KEY)).toMatchObject({ version: 5n, revision: 1n });
    expect(text(await backupStore.read(KEY))).toBe("primary");
  });

  it("repairs every store, and removes only keys the primary really lacks", async () => {
    const [primary, backup] = [new MemoryStore(), new MemoryStore()];
    const alice = { ...KEY, storeId: "alice" };
    await primary.write(alice, bytes("a"), { version: 3n });
    await backup.write({ ...KEY, storeId: "bob" }, bytes("extra"), { version: 3n });
    await backup.write(alice, bytes("a"), { version: 3n });
    const tier = new TierStore({ primary, backup });
    cleanup.push(() => tier.close());
    expect(await tier.resync()).toMatchObject({ unchanged: 1, removed: 1, copied: 0 });
    expect((await backup.listAllKeys({ allStores: true })).keys.map((k) => k.storeId)).toEqual(["alice"]);
  });

  it("runs one at a time, and close() cancels a running one before the tiers close", async () => {
    const primary = new MemoryStore();
    for (let i = 0; i < 200; i++) await primary.write(at(ns("monitors"), `k${i}`), bytes(`v${i}`));
    // Every copy takes 20–40 ms, so 200 keys (64 at a time) take at least 80 ms after the first copy
    // starts: the checks below run while the resync is surely in flight, however fast the machine.
    let firstCopy!: () => void;
    const copying = new Promise<void>((resolve) => (firstCopy = resolve));
    const backup = new (class extends DelayedStore {
      protected override before(operation: Operation): Promise<void> {
        if (operation === "write") firstCopy();
        return super.before(operation);
      }
    })(new MemoryStore(), 20, 40);
    const tier = new TierStore({ primary, backup });
    const running = tier.resync();
    await copying;
    expect((await errorOf(tier.resync())).message).toContain("already running");
    await tier.close();
    expect((await errorOf(running)).code).toBe("cancelled");
    // Closed only after the resync stopped: the tiers saw no call after close.
    expect((await errorOf(tier.write(KEY, bytes("late")))).code).toBe("unavailable");
  });
});

describe("revisions across tiers", () => {
  it("keeps the backup's revision equal to the primary's after the backup missed a write", async () => {
    const primary = new MemoryStore();
    const backupStore = new MemoryStore();
    const backup = new FlakyStore(backupStore, 0, "unavailable", ["write"]);
    const tier = new TierStore({ primary, backup, retry: { backup: FAST_RETRY }, replayIntervalMs: 60_000 });
    cleanup.push(() => tier.close());
    await tier.write(KEY, bytes("1"));
    backup.failures = 1_000;
    expect((await errorOf(tier.write(KEY, bytes("2")))).code).toBe("unavailable"); // the primary has it
    backup.failures = 0;
    await tier.write(KEY, bytes("3"));
    const [p, b] = [await primary.readVersioned(KEY), await backupStore.readVersioned(KEY)];
    expect(p.revision).toBe(3n);
    expect(b).toMatchObject({ revision: p.revision, version: p.version });
    expect(text(b.value)).toBe("3");
  });
});
