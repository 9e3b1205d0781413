// Bounded work per request (contract §7): oversize batches are refused before any work, List is
// capped, and while the largest allowed requests run another client's Read still answers.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TierkvClient, type ClientMutation } from "../../src/client/client.js";
import { DEFAULT_LIMITS } from "../../src/limits.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { KeyRef } from "../../src/store/types.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { errorOf } from "../support/store-assertions.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const NS = { primaryNamespace: "big", secondaryNamespace: "" };
const key = (i: number): KeyRef => ({ ...NS, key: `k${i}` });
const PROBE: KeyRef = { primaryNamespace: "", secondaryNamespace: "", key: "probe" };
const MAX_LIST_KEYS = 2_000;

let server: TestServer;
let other: TierkvClient;
let sqlite: SqliteStore;

beforeAll(async () => {
  sqlite = new SqliteStore(join(tempDir(), "kv.db"));
  server = await startTestServer(new TierStore({ primary: sqlite }), { maxListKeys: MAX_LIST_KEYS });
  other = new TierkvClient({ address: server.address });
  await other.write(PROBE, Buffer.from("probe"));
});
afterAll(async () => {
  await other.close();
  await server.close();
  removeTempDirs();
});

/** The latency of Reads from another client, sampled while `load` runs. */
async function readLatencyDuring(load: Promise<unknown>): Promise<number> {
  let worst = 0;
  let done = false;
  void load.finally(() => (done = true));
  while (!done) {
    const started = performance.now();
    await other.read(PROBE);
    worst = Math.max(worst, performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await load;
  return worst;
}

describe("batch limits", () => {
  it("refuses a Mutate of 100,000 removes at once, applying nothing", async () => {
    await server.client.write(key(1), Buffer.from("kept"));
    const removes: ClientMutation[] = Array.from({ length: 100_000 }, (_, i) => ({ ref: key(i), remove: {} }));
    const started = performance.now();
    const error = await errorOf(server.client.mutate(removes));
    expect(error.code).toBe("invalid-argument");
    // Refused as it is decoded: 100,000 items carry more fields than 1,000 may (contract §7).
    expect(error.message).toContain(`${DEFAULT_LIMITS.maxBatchItems} batch items (--max-batch-items)`);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(Buffer.from(await server.client.read(key(1))).toString()).toBe("kept");
  });

  it("keeps another client's Read answering while the largest allowed Mutate runs", async () => {
    const writes: ClientMutation[] = Array.from({ length: DEFAULT_LIMITS.maxBatchItems }, (_, i) => ({
      ref: key(i),
      write: Buffer.alloc(1024, i % 256),
    }));
    const worst = await readLatencyDuring(server.client.mutate(writes));
    console.log(`Read latency during a ${writes.length}-item Mutate: worst ${worst.toFixed(1)} ms`);
    expect(worst).toBeLessThan(2_000);
  });

  it("keeps Reads answering while four 16 MiB writes run", async () => {
    const load = Promise.all(Array.from({ length: 4 }, (_, i) => server.client.write(key(i), Buffer.alloc(16 * 1024 * 1024, i))));
    const worst = await readLatencyDuring(load);
    console.log(`Read latency during four concurrent 16 MiB writes: worst ${worst.toFixed(1)} ms`);
    expect(worst).toBeLessThan(5_000);
  });
});

describe("List is bounded", () => {
  it("refuses an unpaged List of a namespace larger than --max-list-keys, pointing to ListPage", async () => {
    for (let start = 0; start < MAX_LIST_KEYS + 10; start += 500) {
      const batch = Array.from({ length: 500 }, (_, j): ClientMutation => ({ ref: key(start + j), write: Buffer.from("x") }));
      await server.client.mutate(batch);
    }
    const error = await errorOf(server.client.list(NS));
    expect(error.code).toBe("failed-precondition");
    expect(error.message).toContain("walk it with ListPage");
    let walked = 0;
    for await (const _ of server.client.keys(NS)) walked++;
    expect(walked).toBeGreaterThan(MAX_LIST_KEYS);
  });
});
