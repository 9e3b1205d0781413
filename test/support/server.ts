//! An in-process tierkv server on an ephemeral loopback port, for gRPC-level tests.

import { TierkvClient } from "../../src/client/client.js";
import { DEFAULT_LIMITS, type Limits } from "../../src/limits.js";
import { silentLogger } from "../../src/log.js";
import { startServer, type RunningServer, type ServerOptions } from "../../src/server/server.js";
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

/** The server settings a test may change; the rest are the defaults. */
export type TestServerOptions = Partial<Limits> & Pick<ServerOptions, "messageLimitBytes" | "observeCall">;

export async function startTestServer(store: KVStore, options: TestServerOptions = {}): Promise<TestServer> {
  const { messageLimitBytes, observeCall, ...limits } = options;
  const server = await startServer({
    listen: "127.0.0.1:0",
    store,
    limits: { ...DEFAULT_LIMITS, ...limits },
    ...(messageLimitBytes !== undefined && { messageLimitBytes }),
    ...(observeCall !== undefined && { observeCall }),
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
