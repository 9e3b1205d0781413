// VSS writes go through the tiered store: after VSS traffic (transactions, unconditional puts,
// deletes, conflicts, the global version) a SQLite backup equals the SQLite primary, key for key,
// with the same values and revisions (VSS versions).

import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/vss/v1/vss_pb.js";
import { scanAllKeys } from "../../src/store/scan.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { KVStore } from "../../src/store/types.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { refused, startVssHarness, VssTestClient, type Item } from "./vss-harness.js";

async function snapshot(store: KVStore): Promise<string[]> {
  const rows: string[] = [];
  for await (const key of scanAllKeys(store, { allStores: true })) {
    const stored = await store.readVersioned(key);
    rows.push(JSON.stringify([key.storeId, key.primaryNamespace, key.secondaryNamespace, key.key, stored.revision.toString(), Buffer.from(stored.value).toString("base64")]));
  }
  return rows;
}

describe("VSS with a SQLite backup tier", () => {
  afterAll(() => removeTempDirs());

  it("after VSS traffic, transactions included, the backup equals the primary", async () => {
    const dir = tempDir();
    const vss = await startVssHarness({ primary: new SqliteStore(join(dir, "primary.db")), backup: new SqliteStore(join(dir, "backup.db")) });
    const primary = new SqliteStore(join(dir, "primary.db"));
    const backup = new SqliteStore(join(dir, "backup.db"));
    try {
      const a = new VssTestClient(vss.url, "a");
      const b = new VssTestClient(vss.url, "");
      await a.put([["k1", "v1", 0], ["k2", "v1", 0]], 0);
      await a.put([["k1", "v2", 1], ["k3", "v1", 0]], 1, [["k2", 1]]);
      await a.put([["k3", "v2", -1]], 2);
      await refused(a.put([["k4", "v1", 0]], 2, [["k1", 1]]), 409, ErrorCode.CONFLICT_EXCEPTION);
      await refused(a.put([["k4", "v1", 0]], 3, [["k1", 7]]), 409, ErrorCode.CONFLICT_EXCEPTION);
      await a.delete("k3", -1);
      await a.delete("k1", 5);
      const items: Item[] = Array.from({ length: 300 }, (_, i) => [`bulk/${i}+=`, `value ${i}`, 0] as const);
      await b.put(items);
      await Promise.allSettled(Array.from({ length: 8 }, (_, i) => b.put([["raced", `w${i}`, 0]])));
      await b.put(items.slice(0, 100).map(([key]) => [key, "again", 1] as const), undefined, items.slice(100, 150).map(([key]) => [key, 1] as const));
      await b.put([["bulk/7+=", "reset", -1]]);

      expect((await a.get("k1")).version).toBe(2n);
      expect((await a.get("global_version")).version).toBe(3n);
      expect((await b.get("bulk/7+=")).version).toBe(1n);

      const primaryRows = await snapshot(primary);
      expect(primaryRows.length).toBe(1 + 1 + 300 - 50 + 1);
      expect(await snapshot(backup)).toEqual(primaryRows);
      expect((await vss.tiers.backupStatus()).divergences).toBe(0);
      await expect.poll(async () => (await vss.tiers.backupStatus()).owedKeys).toBe(0);
    } finally {
      await vss.close();
      await primary.close();
      await backup.close();
    }
  });
});
