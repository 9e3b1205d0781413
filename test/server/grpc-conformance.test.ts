// The TypeScript client talking to a real in-process server (sqlite primary) passes the suite.
import { describeConformance } from "../conformance/kvstore-conformance.js";
import { openSqliteHarness } from "../support/sqlite-harness.js";
import { startTestServer } from "../support/server.js";

describeConformance(
  "client → server → sqlite",
  async () => {
    const sqlite = await openSqliteHarness();
    const server = await startTestServer(sqlite.store);
    return {
      store: server.client,
      async close() {
        await server.close();
        await sqlite.close();
      },
    };
  },
  { pageOrder: "newest-created-first", durable: false, highestVersionUnknown: true },
);
