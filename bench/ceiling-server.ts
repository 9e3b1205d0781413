//! The gRPC ceiling: a KVStoreService that stores nothing and answers at once, with responses of
//! the same sizes as tierkv's. Whatever tierkv costs above this is the store's own cost.
//! Run as a process: `node dist/bench/ceiling-server.js` prints `{"address": …}` when listening.

import * as grpc from "@grpc/grpc-js";
import { KVStoreService } from "../gen/tierkv/v1/kvstore_pb.js";
import { grpcHandlers, grpcServiceDefinition, type ServiceImpl } from "../src/rpc/service-definition.js";

const MESSAGE_LIMIT = 64 * 1024 * 1024 + 64 * 1024;
/** Reads answer with a value of the size the read workload stored. */
const readValue = new Uint8Array(Number(process.env["CEILING_READ_BYTES"] ?? 1024));
/** ListPage answers with a full page of key names like the benchmark's. */
const page = Array.from({ length: 1000 }, (_, i) => `update_${i}`);

const doNothing: ServiceImpl<typeof KVStoreService> = {
  read: async () => ({ value: readValue, version: 1n, revision: 1n }),
  write: async () => ({ applied: true }),
  remove: async () => ({ applied: true }),
  list: async () => ({ keys: page }),
  listPage: async (request) => ({ keys: page, nextPageToken: request.pageToken === "9" ? "" : String(Number(request.pageToken || "0") + 1) }),
  listAllKeys: async () => ({ keys: [] }),
  mutate: async (request) => ({ results: request.mutations.map(() => ({ code: 0, message: "", applied: true })) }),
  txn: async (request) => ({ succeeded: true, failedCheck: -1, results: request.operations.map(() => ({ applied: true, revision: 1n })) }),
  // Not benchmarked: a stream that ends at once.
  watch: async function* () {},
};

const server = new grpc.Server({
  "grpc.max_receive_message_length": MESSAGE_LIMIT,
  "grpc.max_send_message_length": MESSAGE_LIMIT,
});
server.addService(grpcServiceDefinition(KVStoreService), grpcHandlers(KVStoreService, doNothing));
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`${JSON.stringify({ address: `127.0.0.1:${port}` })}\n`);
});
process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
