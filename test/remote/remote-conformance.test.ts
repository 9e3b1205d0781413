// The remote backend (grpc://) passes the shared suite against a real second server process.
import { join } from "node:path";
import { openStore } from "../../src/app/open-store.js";
import { describeConformance } from "../conformance/kvstore-conformance.js";
import { spawnServer } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

describeConformance(
  "remote: grpc:// → tierkv serve (sqlite)",
  async () => {
    const server = await spawnServer(["--primary", `sqlite:${join(tempDir(), "remote.db")}`]);
    const store = await openStore(`grpc://${server.address}`);
    return {
      store,
      async close() {
        await store.close();
        await server.kill();
        removeTempDirs();
      },
    };
  },
  { pageOrder: "newest-created-first", durable: false, assignsVersions: true, highestVersionUnknown: true },
);
