// The per-tier time limit and circuit breaker in process (contract §4.12): a backup that hangs is
// given up on at its time limit, then marked down; degraded writes skip it (owed), required ones
// fail at once; a probe marks it up again and the debt is replayed. Health follows.
import { afterEach, expect, it } from "vitest";
import { StoreError } from "../../src/store/errors.js";
import { MemoryStore } from "../../src/store/memory.js";
import { NO_RETRY } from "../../src/tier/retry.js";
import { TierStore, type BackupPolicy } from "../../src/tier/tier-store.js";
import { ForwardingStore, type Operation } from "../support/fault-stores.js";

/** A store that can hang: while `hung`, every call waits until released. */
class HangingStore extends ForwardingStore {
  hung = false;
  private waiting: Array<() => void> = [];
  protected override async before(_operation: Operation): Promise<void> {
    if (this.hung) await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    this.hung = false;
    for (const resume of this.waiting.splice(0)) resume();
  }
}

const stores: TierStore[] = [];
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
});

const key = (i: number) => ({ primaryNamespace: "ns", secondaryNamespace: "", key: `k${i}` });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function setUp(policy: BackupPolicy) {
  const backupInner = new MemoryStore();
  const backup = new HangingStore(backupInner);
  const store = new TierStore({
    primary: new MemoryStore(),
    backup,
    backupPolicy: policy,
    retry: { backup: NO_RETRY },
    replayIntervalMs: 50,
    health: { timeLimitMinMs: 50, timeLimitMaxMs: 100, breakerFailures: 2, probeInitialDelayMs: 20, probeMaxDelayMs: 40 },
  });
  stores.push(store);
  const health: boolean[] = [];
  store.onHealthChange((serving) => health.push(serving));
  return { store, backup, backupInner, health };
}

it("degraded: a hung backup costs a write at most its time limit, then none; the debt is replayed after", async () => {
  const { store, backup, backupInner, health } = setUp("degraded");
  await store.write(key(0), Buffer.from("a"));
  backup.hung = true;
  const started = Date.now();
  await Promise.all([store.write(key(1), Buffer.from("b")), store.write(key(2), Buffer.from("c"))]);
  expect(Date.now() - started).toBeLessThan(1_000);
  expect((await store.backupStatus()).state).toBe("down");
  const skipped = Date.now();
  for (let i = 3; i < 20; i++) await store.write(key(i), Buffer.from(`v${i}`));
  expect(Date.now() - skipped).toBeLessThan(200);
  expect(store.snapshot().skippedBackupWrites).toBe(17);
  expect((await store.backupStatus()).owedKeys).toBe(19);
  expect(health).toEqual([]);

  backup.release();
  for (let i = 0; i < 100 && (await store.backupStatus()).owedKeys > 0; i++) await sleep(20);
  const status = await store.backupStatus();
  expect(status).toMatchObject({ state: "up", transitions: 2, owedKeys: 0 });
  expect(status.downMs).toBeGreaterThan(0);
  expect(Buffer.from(await backupInner.read(key(19))).toString()).toBe("v19");
});

it("required: writes fail at once with UNAVAILABLE while the backup is down; health says so", async () => {
  const { store, backup, health } = setUp("required");
  await store.write(key(0), Buffer.from("a"));
  backup.hung = true;
  await expect(store.write(key(1), Buffer.from("b"))).rejects.toMatchObject({ code: "unavailable" });
  await expect(store.write(key(2), Buffer.from("c"))).rejects.toMatchObject({ code: "unavailable" });
  expect(store.serving).toBe(false);
  const started = Date.now();
  const error = await store.write(key(3), Buffer.from("d")).catch((e: unknown) => e);
  expect(Date.now() - started).toBeLessThan(20);
  expect(error).toBeInstanceOf(StoreError);
  expect((error as StoreError).message).toBe("the backup tier is unavailable; nothing was acknowledged");
  backup.release();
  for (let i = 0; i < 100 && !store.serving; i++) await sleep(20);
  expect(store.serving).toBe(true);
  expect(health).toEqual([false, true]);
  await store.write(key(4), Buffer.from("e"));
});

/** A store that fails every call at once with UNAVAILABLE while `failing`. */
class FailingStore extends ForwardingStore {
  failing = false;
  protected override async before(_operation: Operation): Promise<void> {
    if (this.failing) throw new StoreError("unavailable", "the backup is away");
  }
}

it("required: a Txn whose backup goes down while the primary applies it fails, and its keys stay owed", async () => {
  const primaryInner = new MemoryStore();
  const primary = new HangingStore(primaryInner);
  const backup = new FailingStore(new MemoryStore());
  const store = new TierStore({
    primary,
    backup,
    backupPolicy: "required",
    retry: { backup: NO_RETRY },
    replayIntervalMs: 60_000,
    health: { timeLimitMinMs: 1_000, timeLimitMaxMs: 2_000, breakerFailures: 2, probeInitialDelayMs: 60_000, probeMaxDelayMs: 60_000 },
  });
  stores.push(store);
  // Two writes pass the primary, then fail in the backup: the breaker opens.
  backup.failing = true;
  const failing = [store.write(key(1), Buffer.from("b")), store.write(key(2), Buffer.from("c"))].map((write) => write.catch((e: unknown) => e));
  // Meanwhile a Txn passes the check before the primary (the backup is not down yet) and waits in it.
  primary.hung = true;
  const txn = store.txn({ checks: [], operations: [{ ...key(3), kind: "write", value: Buffer.from("t") }] }).catch((e: unknown) => e);
  for (let i = 0; i < 100 && store.serving; i++) await sleep(5);
  expect(store.serving).toBe(false);
  primary.release();
  // The primary applied it; the backup never got it: it must not be acknowledged.
  expect(await txn).toMatchObject({ code: "unavailable" });
  await Promise.all(failing);
  expect(await primaryInner.listOwed(10)).toContainEqual(expect.objectContaining({ key: "k3" }));
});
