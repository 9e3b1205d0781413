// `migrate` called in-process: interruption by an AbortSignal and resume, a target tampered with
// between copy and verification, a checkpoint of another migration, the bounded concurrency, and
// the progress output (bar on a terminal, lines otherwise).

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { defaultCheckpointName, normalizeStoreUri } from "../../src/migrate/checkpoint.js";
import { migrate, MigrateError, MigrateUsageError } from "../../src/migrate/migrate.js";
import { Progress, progressBar } from "../../src/migrate/progress.js";
import { MemoryStore } from "../../src/store/memory.js";
import type { KVStore, KeyRef, MutationOptions, MutationOutcome } from "../../src/store/types.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { bytes, expectSameData, seed, snapshot } from "./fixtures.js";

afterEach(removeTempDirs);

/** A MemoryStore whose writes can be watched (and slowed, to count writes in flight). */
class WatchedStore extends MemoryStore {
  writes = 0;
  inFlight = 0;
  maxInFlight = 0;
  onWrite: (() => void) | undefined;

  override async write(ref: KeyRef, value: Uint8Array, options?: MutationOptions): Promise<MutationOutcome> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((resolve) => setImmediate(resolve));
      const outcome = await super.write(ref, value, options);
      this.writes++;
      this.onWrite?.();
      return outcome;
    } finally {
      this.inFlight--;
    }
  }
}

const quiet = { write: () => true };

async function seeded(perNamespace = 20): Promise<{ source: KVStore; keys: number }> {
  const source = new MemoryStore();
  return { source, keys: await seed(source, perNamespace) };
}

describe("migrate (in-process)", () => {
  it("stops on an AbortSignal with a checkpoint, and a second call resumes after it", async () => {
    const { source, keys } = await seeded(40);
    const target = new WatchedStore();
    const checkpointPath = join(tempDir(), "cp");
    const controller = new AbortController();
    target.onWrite = () => {
      if (target.writes === 100) controller.abort();
    };
    const common = { source, target, from: "memory:", to: "sqlite:/nowhere/target.db", checkpointPath, progressStream: quiet };
    const error = await migrate({ ...common, signal: controller.signal }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(MigrateError);
    expect((error as Error).message).toMatch(/^interrupted while copying \(\d+ keys copied\); rerun the same command to resume/);
    const saved = JSON.parse(readFileSync(checkpointPath, "utf8")) as { copied: number; lastKey: unknown; from: string; to: string };
    expect(saved.copied).toBeGreaterThan(0);
    expect(saved.copied).toBeLessThanOrEqual(target.writes);
    expect(saved.to).toBe("sqlite:/nowhere/target.db");

    target.onWrite = undefined;
    const writesBefore = target.writes;
    const notes: string[] = [];
    const report = await migrate({ ...common, note: (line) => notes.push(line) });
    expect(report.resumed).toBe(true);
    expect(notes[0]).toMatch(/^resuming the migration \(copy\) from checkpoint/);
    // Only the keys after the checkpoint (plus those in flight when it was saved) are copied again.
    expect(report.copied).toBe(target.writes - writesBefore);
    expect(report.copied).toBeLessThanOrEqual(keys - saved.copied);
    expect(report.copied + saved.copied).toBeGreaterThanOrEqual(keys);
    expect(report.verification.mismatches).toEqual([]);
    expect(report.verification.versionsCompared).toBe(true);
    expect(existsSync(checkpointPath)).toBe(false);
    expectSameData(await snapshot(target), await snapshot(source));
  });

  it("keeps at most --concurrency writes in flight", async () => {
    const { source, keys } = await seeded(20);
    const target = new WatchedStore();
    const report = await migrate({ source, target, from: "memory:", to: "fs:/x", checkpointPath: join(tempDir(), "cp"), concurrency: 8, progressStream: quiet });
    expect(report.copied).toBe(keys);
    expect(target.maxInFlight).toBe(8);
    // fs: as the target (by URI) keeps no versions: they are not compared.
    expect(report.verification.versionsCompared).toBe(false);
  });

  it("reports a target changed between copy and verification, naming the store and namespace", async () => {
    const { source } = await seeded(5);
    const target = new MemoryStore();
    const checkpointPath = join(tempDir(), "cp");
    const error = await migrate({
      source,
      target,
      from: "memory:",
      to: "sqlite:/t.db",
      checkpointPath,
      progressStream: quiet,
      beforeVerify: async () => {
        await target.write({ storeId: "bob", primaryNamespace: "payments", secondaryNamespace: "inbound", key: "key_1" }, bytes(5, 5));
        await target.write({ storeId: "alice", primaryNamespace: "", secondaryNamespace: "", key: "extra" }, bytes(5, 6));
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(MigrateError);
    expect((error as Error).message).toMatch(
      /^verification failed: store alice, namespace \(root\): 5 keys on the source, 6 on the target; store bob, namespace payments\/inbound: keys or values differ \(SHA-256 [0-9a-f]{12}… on the source, [0-9a-f]{12}… on the target\); rerun with --overwrite to copy again$/,
    );
    expect(existsSync(checkpointPath)).toBe(false);
  });

  it("refuses a checkpoint of another migration and a non-empty target", async () => {
    const { source } = await seeded(1);
    const dir = tempDir();
    const checkpointPath = join(dir, "cp");
    writeFileSync(
      checkpointPath,
      JSON.stringify({ format: 1, from: "sqlite:/a.db", to: "sqlite:/b.db", overwrite: false, phase: "copy", pageToken: "", lastKey: null, copied: 3 }),
    );
    await expect(migrate({ source, target: new MemoryStore(), from: "sqlite:/c.db", to: "sqlite:/b.db", checkpointPath, progressStream: quiet })).rejects.toThrow(
      new MigrateUsageError(`checkpoint ${checkpointPath} belongs to a migration from sqlite:/a.db to sqlite:/b.db; remove it or pass another --checkpoint`),
    );
    const target = new MemoryStore();
    await target.write({ primaryNamespace: "a", secondaryNamespace: "", key: "b" }, bytes(1, 1));
    await expect(migrate({ source, target, from: "memory:", to: "sqlite:/t.db", checkpointPath: join(dir, "other"), progressStream: quiet })).rejects.toThrow(
      /the target sqlite:\/t\.db is not empty \(store default, key a\/b\); pass --overwrite/,
    );
    expect(existsSync(join(dir, "other"))).toBe(false);
  });

  it("names checkpoints by a hash of the normalized (from, to) pair; normalizing drops tokens and passwords", () => {
    expect(normalizeStoreUri("grpc://10.0.0.5:50051?token_file=/run/secrets/t")).toBe("grpc://10.0.0.5:50051");
    expect(normalizeStoreUri("postgres://kv:p@ss/w%rd@db.internal:5433/kv?sslmode=require&password=x")).toBe("postgres://kv@db.internal:5433/kv");
    const name = defaultCheckpointName("sqlite:/var/lib/tierkv/kv.db", "grpc://10.0.0.5:50051?token_file=/x");
    expect(name).toMatch(/^tierkv-migrate-[0-9a-f]{16}\.migrate-checkpoint$/);
    // The same migration with a renewed token or password resumes from the same file; another pair does not.
    expect(defaultCheckpointName("sqlite:/var/lib/tierkv/kv.db", "grpc://10.0.0.5:50051?token_file=/y")).toBe(name);
    expect(defaultCheckpointName("sqlite:/var/lib/tierkv/kv.db", "grpc://10.0.0.6:50051")).not.toBe(name);
    expect(defaultCheckpointName("postgres://kv:old@db/kv", "sqlite:/t.db")).toBe(defaultCheckpointName("postgres://kv:new@db/kv", "sqlite:/t.db"));
    expect(defaultCheckpointName("sqlite:/a.db", "sqlite:/b.db")).not.toBe(defaultCheckpointName("sqlite:/b.db", "sqlite:/a.db"));
  });
});

// Fake timers: the redraw and log intervals fire exactly as the test advances them, however busy the machine.
describe("progress", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("draws a bar in place on a terminal and ends it with a newline", () => {
    const written: string[] = [];
    const progress = new Progress({ label: "migrate", unit: "keys", stream: { isTTY: true, write: (s: string) => written.push(s) } });
    progress.set(45, 100, "copied 45 (1.0 KiB)");
    vi.advanceTimersByTime(250);
    progress.finish();
    expect(written.length).toBeGreaterThanOrEqual(2);
    expect(written[0]).toBe(`\r${progressBar(45, 100, "keys", "copied 45 (1.0 KiB)")}\x1b[K`);
    expect(written[0]).toContain("[##############................]  45% 45/100 keys · copied 45 (1.0 KiB)");
    expect(written.at(-1)!.endsWith("\n")).toBe(true);
  });

  it("logs a line per interval when not a terminal, and nothing at the end", () => {
    const written: string[] = [];
    const progress = new Progress({ label: "migrate", unit: "keys", intervalMs: 50, stream: { write: (s: string) => written.push(s) } });
    progress.set(10, 20, "copied 10 (10 B)");
    vi.advanceTimersByTime(180);
    progress.finish();
    const count = written.length;
    expect(count).toBeGreaterThanOrEqual(2);
    expect(written[0]).toBe("migrate: 10/20 keys, copied 10 (10 B)\n");
    vi.advanceTimersByTime(120);
    expect(written.length).toBe(count);
  });
});
