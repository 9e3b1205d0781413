// Per-store usage metrics (opt-in): keys and bytes of each store with a quota (a VSS user's store
// ids together), from the counts quotas keep, beside the quota itself; absent unless asked for.
import { expect, it } from "vitest";
import { AuthorizedStore } from "../../src/auth/authorized-store.js";
import { createMetrics } from "../../src/server/metrics.js";
import { MemoryStore } from "../../src/store/memory.js";
import { TierStore } from "../../src/tier/tier-store.js";

it("reports keys, bytes and the quota per store with a quota when asked, and nothing per store otherwise", async () => {
  const tier = new TierStore({ primary: new MemoryStore() });
  const alice = new AuthorizedStore(tier, { name: "alice", storeId: "alice", roles: new Set(["write"]), quota: { maxKeys: 10 } });
  await alice.write({ primaryNamespace: "m", secondaryNamespace: "", key: "a" }, Buffer.from("12345"));
  const text = await createMetrics(tier, { perStore: true }).registry.metrics();
  expect(text).toContain('tierkv_store_keys{store="alice"} 1');
  expect(text).toContain('tierkv_store_bytes{store="alice"} 5');
  expect(text).toContain('tierkv_store_quota_keys{store="alice"} 10');
  // Alice has no byte quota: no line, rather than a limit of 0 that reads as "full".
  expect(text).not.toMatch(/^tierkv_store_quota_bytes\{/m);
  expect(await createMetrics(tier).registry.metrics()).not.toContain("tierkv_store_keys");
  await tier.close();
});

it("reports a VSS user's store ids as one tenant: their keys, bytes and count beside the quota", async () => {
  const tier = new TierStore({ primary: new MemoryStore() });
  const quota = { maxKeys: 10, maxStores: 3 };
  const key = { primaryNamespace: "", secondaryNamespace: "", key: "k" };
  for (const storeId of ["vss:alice:one", "vss:alice:two"]) {
    await new AuthorizedStore(tier, { name: "alice", storeId, roles: new Set(["write"]), quota }).write(key, Buffer.from("123"));
  }
  const text = await createMetrics(tier, { perStore: true }).registry.metrics();
  expect(text).toContain('tierkv_store_keys{store="vss:alice:"} 2');
  expect(text).toContain('tierkv_store_bytes{store="vss:alice:"} 6');
  expect(text).toContain('tierkv_store_ids{store="vss:alice:"} 2');
  expect(text).toContain('tierkv_store_quota_keys{store="vss:alice:"} 10');
  expect(text).toContain('tierkv_store_quota_ids{store="vss:alice:"} 3');
  expect(text).not.toContain("vss:alice:one");
  await tier.close();
});
