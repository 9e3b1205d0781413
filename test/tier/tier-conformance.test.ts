// The tiered store is itself a KVStore: it passes the shared suite in its common setups.
import { join } from "node:path";
import { MemoryStore } from "../../src/store/memory.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { describeConformance } from "../conformance/kvstore-conformance.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

describeConformance(
  "tier: memory primary only",
  async () => {
    const store = new TierStore({ primary: new MemoryStore() });
    return { store, close: () => store.close() };
  },
  { pageOrder: "newest-created-first", durable: false, assignsVersions: true },
);

describeConformance(
  "tier: sqlite primary + sqlite backup + memory ephemeral",
  async () => {
    const dir = tempDir();
    const open = (): TierStore =>
      new TierStore({
        primary: new SqliteStore(join(dir, "primary.db")),
        backup: new SqliteStore(join(dir, "backup.db")),
        ephemeral: new MemoryStore(),
      });
    let store = open();
    return {
      get store() {
        return store;
      },
      async reopen() {
        await store.close();
        store = open();
        return store;
      },
      async close() {
        await store.close();
        removeTempDirs();
      },
    };
  },
  { pageOrder: "newest-created-first", durable: true, assignsVersions: true },
);
