// The TypeScript client talking to a real in-process server (a tiered store over a sqlite primary,
// as `tierkv serve` runs) passes the suite.
import { TierStore } from "../../src/tier/tier-store.js";
import { describeConformance } from "../conformance/kvstore-conformance.js";
import { openSqliteHarness } from "../support/sqlite-harness.js";
import { startTestServer } from "../support/server.js";

describeConformance(
  "client → server → tier (sqlite)",
  async () => {
    const sqlite = await openSqliteHarness();
    const tiers = new TierStore({ primary: sqlite.store });
    const server = await startTestServer(tiers);
    return {
      store: server.client,
      async close() {
        await server.close();
        await sqlite.close();
      },
    };
  },
  { pageOrder: "newest-created-first", durable: false, assignsVersions: true, highestVersionUnknown: true },
);
