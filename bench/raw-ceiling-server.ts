//! The independent gRPC ceiling ("grpc-ceiling-raw"): plain grpc-js handlers and no tierkv code at
//! all. Requests pass through as Buffers (identity deserializer: nothing is decoded, except the
//! two or three fields below, read by a tiny hand-written wire scanner) and every response is
//! bytes encoded once at start-up. What tierkv costs above this is tierkv's own cost: its codec,
//! handler glue, authentication, validation and store. `grpc-ceiling` (ceiling-server.ts) still
//! uses tierkv's service glue and protobuf-es; the gap between the two ceilings is that glue.
//! Run as a process: `node dist/bench/raw-ceiling-server.js` prints `{"address": …}` when listening.

import * as grpc from "@grpc/grpc-js";
import { bytesField, scan, varintField } from "./wire.js";

const MESSAGE_LIMIT = 64 * 1024 * 1024 + 64 * 1024;

// --- responses, encoded once --------------------------------------------------------------------

const APPLIED = varintField(1, 1); // WriteResponse, RemoveResponse: applied = true
const readResponse = Buffer.concat([
  bytesField(1, Buffer.alloc(Number(process.env["CEILING_READ_BYTES"] ?? 1024))),
  varintField(2, 1),
  varintField(3, 1),
]);
const keys = Buffer.concat(Array.from({ length: 1000 }, (_, i) => bytesField(1, `update_${i}`)));
const listResponse = keys;
/** ListPage: ten full pages, like ceiling-server.ts (tokens "1".."9", then the end). */
const pages = Array.from({ length: 10 }, (_, i) => (i === 9 ? keys : Buffer.concat([keys, bytesField(2, String(i + 1))])));
const mutationResult = bytesField(1, varintField(3, 1)); // MutationResult { applied: true }
const txnHead = Buffer.concat([varintField(1, 1), varintField(2, -1)]); // succeeded, failed_check = -1
const txnResult = bytesField(3, Buffer.concat([varintField(1, 1), varintField(2, 1)])); // { applied, revision: 1 }
const repeat = (unit: Buffer, n: number, head = Buffer.alloc(0)): Buffer => Buffer.concat([head, ...Array<Buffer>(n).fill(unit)]);

/** How many times `field` occurs at the top level of `request` (the items of a batch). */
const count = (request: Buffer, field: number): number => scan(request).filter((f) => f.field === field).length;

type Answer = (request: Buffer) => Buffer;
const ANSWERS: Record<string, Answer> = {
  Read: () => readResponse,
  Write: () => APPLIED,
  Remove: () => APPLIED,
  List: () => listResponse,
  ListPage: (request) => {
    const token = scan(request).findLast((f) => f.field === 4)?.bytes?.toString() ?? "";
    return pages[Math.min(9, Number(token || "0"))]!;
  },
  ListAllKeys: () => Buffer.alloc(0),
  Mutate: (request) => repeat(mutationResult, count(request, 1)),
  Txn: (request) => repeat(txnResult, count(request, 2), txnHead),
};

const identity = (bytes: Buffer): Buffer => bytes;
const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
const handlers: grpc.UntypedServiceImplementation = {};
for (const [name, answer] of Object.entries(ANSWERS)) {
  definition[name] = {
    path: `/tierkv.v1.KVStoreService/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
  const unary: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => callback(null, answer(call.request));
  handlers[name] = unary as grpc.UntypedHandleCall;
}

const server = new grpc.Server({
  "grpc.max_receive_message_length": MESSAGE_LIMIT,
  "grpc.max_send_message_length": MESSAGE_LIMIT,
});
server.addService(definition as grpc.ServiceDefinition, handlers);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`${JSON.stringify({ address: `127.0.0.1:${port}` })}\n`);
});
process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
