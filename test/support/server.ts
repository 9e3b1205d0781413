//! An in-process tierkv server on an ephemeral loopback port, for gRPC-level tests.

import { TierkvClient } from "../../src/client/client.js";
import { DEFAULT_LIMITS, type Limits } from "../../src/limits.js";
import { silentLogger } from "../../src/log.js";
import { startServer, type RunningServer } from "../../src/server/server.js";
import type { KVStore } from "../../src/store/types.js";

export interface TestServer {
  readonly server: RunningServer;
  readonly address: string;
  readonly store: KVStore;
  /** A client connected to the server, closed by `close()`. */
  readonly client: TierkvClient;
  /** Closes the client, the server and the store. */
  close(): Promise<void>;
}

export async function startTestServer(store: KVStore, limits: Partial<Limits> = {}): Promise<TestServer> {
  const server = await startServer({
    listen: "127.0.0.1:0",
    store,
    limits: { ...DEFAULT_LIMITS, ...limits },
    logger: silentLogger(),
  });
  const client = new TierkvClient({ address: server.address, timeoutMs: 20_000 });
  return {
    server,
    address: server.address,
    store,
    client,
    async close() {
      await client.close();
      await server.shutdown(1_000);
      await store.close();
    },
  };
}
