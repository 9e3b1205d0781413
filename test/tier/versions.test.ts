// Versions never make an acknowledged write vanish (contract §3): the clock is seeded from the
// primary, a caller cannot freeze a key with a far-future version, and every reply says whether
// the mutation was applied.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";
import { HybridClock } from "../../src/tier/hybrid-clock.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { at, bytes, errorOf, ns, text } from "./tier-test-helpers.js";

const KEY = at(ns("monitors"), "chan_1");
const NOW = 1_800_000_000_000;
const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
  removeTempDirs();
});

function tierAt(path: string, now: number): TierStore {
  const tier = new TierStore({ primary: new SqliteStore(path), clock: new HybridClock(() => now) });
  cleanup.push(() => tier.close());
  return tier;
}

describe("version clock", () => {
  it("refuses a caller version far ahead of the clock, so one write cannot freeze a key", async () => {
    const tier = tierAt(join(tempDir(), "kv.db"), NOW);
    const error = await errorOf(tier.write(KEY, bytes("frozen"), { version: 1n << 62n }));
    expect(error.code).toBe("invalid-argument");
    expect(error.message).toContain("ahead of the server's clock");
    // Nothing was written, and later server-versioned writes apply.
    expect((await errorOf(tier.read(KEY))).code).toBe("not-found");
    expect(await tier.write(KEY, bytes("next"))).toBe("applied");
    expect(text(await tier.read(KEY))).toBe("next");
  });

  it("seeds the clock from the primary: a far-future version already stored does not freeze the key after a restart", async () => {
    const path = join(tempDir(), "kv.db");
    // A version written before the skew limit existed (or by another tool).
    const legacy = new SqliteStore(path);
    await legacy.write(KEY, bytes("legacy"), { version: 1n << 62n });
    await legacy.close();

    const tier = tierAt(path, NOW);
    expect(await tier.write(KEY, bytes("after restart"))).toBe("applied");
    expect(text(await tier.read(KEY))).toBe("after restart");
    expect(await tier.remove(KEY)).toBe("applied");
    expect((await errorOf(tier.read(KEY))).code).toBe("not-found");
  });

  it("keeps applying server-versioned writes when the wall clock steps back across a restart", async () => {
    const path = join(tempDir(), "kv.db");
    const before = new TierStore({ primary: new SqliteStore(path), clock: new HybridClock(() => NOW) });
    expect(await before.write(KEY, bytes("before"))).toBe("applied");
    await before.close();

    const after = tierAt(path, NOW - 60 * 60 * 1000); // one hour back
    expect(await after.write(KEY, bytes("after"))).toBe("applied");
    expect(text(await after.read(KEY))).toBe("after");
    expect((await after.readVersioned(KEY)).version).toBeGreaterThan(BigInt(NOW) << 20n);
  });

  it("observes the versions a chained instance receives, so its own next version is above them", async () => {
    const tier = tierAt(join(tempDir(), "kv.db"), NOW);
    const forwarded = (BigInt(NOW) + 5_000n) << 20n; // 5 s ahead: within the skew
    expect(await tier.write(KEY, bytes("forwarded"), { version: forwarded })).toBe("applied");
    expect(await tier.write(KEY, bytes("local"))).toBe("applied");
    expect((await tier.readVersioned(KEY)).version).toBe(forwarded + 1n);
  });
});

describe("applied or stale, over the wire", () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
  });

  it("Write, Remove and Mutate replies say whether the mutation was applied", async () => {
    server = await startTestServer(new TierStore({ primary: new SqliteStore(join(tempDir(), "kv.db")) }));
    const { client } = server;
    const version = BigInt(Date.now()) << 20n;
    expect(await client.write(KEY, bytes("v2"), { version: version + 2n })).toBe("applied");
    expect(await client.write(KEY, bytes("v1"), { version: version + 1n })).toBe("stale");
    expect(await client.remove(KEY, { version: version + 1n })).toBe("stale");
    expect(text(await client.read(KEY))).toBe("v2");
    const results = await client.mutate([
      { ref: KEY, version: version + 1n, write: bytes("old") },
      { ref: at(ns("monitors"), "other"), write: bytes("new") },
    ]);
    expect(results).toEqual(["stale", "applied"]);
    expect(text(await client.read(KEY))).toBe("v2");
  });
});
