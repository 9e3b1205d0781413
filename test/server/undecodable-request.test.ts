// Bytes that are not a valid request message are the caller's fault: every KVStoreService RPC
// answers them INVALID_ARGUMENT naming the expected message, not INTERNAL "Error deserializing
// request", and the server keeps serving.
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KVStoreService } from "../../gen/tierkv/v1/kvstore_pb.js";
import { MemoryStore } from "../../src/store/memory.js";
import { startTestServer, type TestServer } from "../support/server.js";

let server: TestServer;
let raw: grpc.Client;

/** Sends `bytes` as the request of `method` as they are, bypassing any serializer. */
function callRaw(method: DescMethod, bytes: Buffer): Promise<Buffer> {
  const identity = (buffer: Buffer): Buffer => buffer;
  return new Promise((resolve, reject) => {
    raw.makeUnaryRequest(
      `/${KVStoreService.typeName}/${method.name}`,
      identity,
      identity,
      bytes,
      { deadline: Date.now() + 10_000 },
      (error, response) => (error ? reject(error) : resolve(response!)),
    );
  });
}

/** A request of every method with its last field set, so cutting its last byte leaves it unreadable. */
const VALID: Record<string, MessageInitShape<DescMessage>> = {
  Read: { primaryNamespace: "ns", secondaryNamespace: "sub", key: "key" },
  Write: { primaryNamespace: "ns", secondaryNamespace: "sub", key: "key", value: new Uint8Array([1, 2, 3]), version: 7n },
  Remove: { primaryNamespace: "ns", secondaryNamespace: "sub", key: "key", version: 7n, lazy: true },
  List: { primaryNamespace: "ns", secondaryNamespace: "sub" },
  ListPage: { primaryNamespace: "ns", secondaryNamespace: "sub", pageSize: 5, pageToken: "token" },
  ListAllKeys: { pageSize: 5, pageToken: "token" },
  Mutate: { mutations: [{ key: "key", kind: { case: "write", value: { value: new Uint8Array([1]) } } }] },
  Txn: { operations: [{ key: "key", kind: { case: "write", value: { value: new Uint8Array([1]) } } }] },
  Watch: { primaryNamespace: "ns", startSequence: 1n, values: true, allStores: true, starts: { store: 5n } },
};

/** Bytes no request message decodes from, by kind. */
function malformed(method: DescMethod): Record<string, Buffer> {
  const valid = Buffer.from(toBinary(method.input, create(method.input, VALID[method.name])));
  return {
    // Fixed rather than fresh: a failure must be reproducible.
    "random bytes": Buffer.from("4204618e7c340ae6693f864679c006e05caa4e3f64b6bde3", "hex"),
    "a truncated message": valid.subarray(0, valid.length - 1),
    "a field with wire type 7": Buffer.concat([valid, Buffer.from([(1 << 3) | 7, 0])]),
  };
}

beforeAll(async () => {
  server = await startTestServer(new MemoryStore());
  raw = new grpc.Client(server.address, grpc.credentials.createInsecure());
  await server.client.write({ primaryNamespace: "ns", secondaryNamespace: "sub", key: "seed" }, new TextEncoder().encode("seed"));
});

afterAll(async () => {
  raw?.close();
  await server?.close();
});

describe("a request that does not decode", () => {
  it("covers every method of KVStoreService", () => {
    expect(KVStoreService.methods.map((method) => method.name).sort()).toEqual(Object.keys(VALID).sort());
  });

  for (const method of KVStoreService.methods) {
    it(`is answered INVALID_ARGUMENT by ${method.name}`, async () => {
      for (const [kind, bytes] of Object.entries(malformed(method))) {
        expect(() => fromBinary(method.input, bytes), `${kind} decodes`).toThrow();
        const error = await callRaw(method, bytes).then(
          () => undefined,
          (e: unknown) => e as grpc.ServiceError,
        );
        expect(error, `${method.name} accepted ${kind}`).toBeDefined();
        expect(error!.code, `${kind}: ${error!.details}`).toBe(grpc.status.INVALID_ARGUMENT);
        expect(error!.details).toContain(`request is not a valid ${method.input.typeName} message`);
        expect(error!.details).not.toContain("    at ");
      }
    });
  }

  it("leaves the server serving", async () => {
    const method = KVStoreService.method.read;
    const request = Buffer.from(toBinary(method.input, create(method.input, { primaryNamespace: "ns", secondaryNamespace: "sub", key: "seed" })));
    const response = fromBinary(method.output, await callRaw(method, request));
    expect(new TextDecoder().decode(response.value)).toBe("seed");
  });
});
