// A binary request's fields are counted before it is decoded (contract §7, "fields per request"):
// a flood of unknown fields, or of empty repeated entries, is refused INVALID_ARGUMENT with the
// limit in the message on gRPC, Connect binary and VSS, and nothing reaches the store; a request
// with a few unknown fields (a newer client's) is served, its unknown fields dropped.
import { createServer, type Server } from "node:http";
import * as grpc from "@grpc/grpc-js";
import { create, toBinary, type DescMessage, type DescMethod, type MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KVStoreService, MutateRequestSchema, WriteRequestSchema } from "../../gen/tierkv/v1/kvstore_pb.js";
import { ErrorCode, PutObjectRequestSchema } from "../../gen/vss/v1/vss_pb.js";
import { OPEN_PRINCIPAL } from "../../src/auth/principal.js";
import { DEFAULT_LIMITS, requestFieldLimit } from "../../src/limits.js";
import { silentLogger } from "../../src/log.js";
import { connectService } from "../../src/server/connect-service.js";
import { MemoryStore } from "../../src/store/memory.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { startVssServer, type RunningVssServer } from "../../src/vss/http-server.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { errorOf, rawPost } from "../vss/vss-harness.js";

const LIMIT = requestFieldLimit(DEFAULT_LIMITS);
const TOO_MANY = new RegExp(`^the request has more than ${LIMIT} fields, known or unknown, .* 1000 batch items \\(--max-batch-items\\) may have: send fewer`);

const memory = new MemoryStore();
const tiers = new TierStore({ primary: memory });
let grpcServer: TestServer;
let raw: grpc.Client;
let connect: Server;
let base: string;
let vss: RunningVssServer;

const key = { primaryNamespace: "p", secondaryNamespace: "", key: "k" };

/** `count` unknown varint fields, numbered from 1000 (3 bytes each). */
function unknownFields(count: number): Buffer {
  const bytes = Buffer.alloc(count * 3);
  for (let i = 0; i < count; i++) bytes.set([0xc0, 0x3e, 0x01], i * 3); // field 1000, varint, value 1
  return bytes;
}

/** One of each wire type a newer client might send, numbered where tierkv has no fields. */
const FEW_UNKNOWN = Buffer.from([
  0xc0, 0x3e, 0x2a, // field 1000, varint 42
  0xca, 0x3e, 0x03, 0x61, 0x62, 0x63, // field 1001, length-delimited "abc"
  0xd5, 0x3e, 1, 2, 3, 4, // field 1002, fixed32
  0xd9, 0x3e, 1, 2, 3, 4, 5, 6, 7, 8, // field 1003, fixed64
]);

function encode<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>, ...extra: Buffer[]): Buffer {
  return Buffer.concat([toBinary(schema, create(schema, init)), ...extra]);
}

/** Sends `bytes` as the request of `method` as they are. */
function grpcRaw(method: DescMethod, bytes: Buffer): Promise<Buffer> {
  const identity = (buffer: Buffer): Buffer => buffer;
  return new Promise((resolve, reject) =>
    raw.makeUnaryRequest(`/${KVStoreService.typeName}/${method.name}`, identity, identity, bytes, { deadline: Date.now() + 10_000 }, (error, response) =>
      error ? reject(error) : resolve(response!),
    ),
  );
}

async function grpcRefusal(method: DescMethod, bytes: Buffer): Promise<grpc.ServiceError> {
  const error = await grpcRaw(method, bytes).then(
    () => undefined,
    (e: unknown) => e as grpc.ServiceError,
  );
  expect(error, `${method.name} was served`).toBeDefined();
  return error!;
}

const connectBinary = (method: string, bytes: Buffer): Promise<Response> =>
  fetch(`${base}/tierkv.v1.KVStoreService/${method}`, { method: "POST", headers: { "content-type": "application/proto" }, body: bytes });

beforeAll(async () => {
  grpcServer = await startTestServer(tiers);
  raw = new grpc.Client(grpcServer.address, grpc.credentials.createInsecure());
  const handler = connectService({ store: tiers, limits: DEFAULT_LIMITS, authenticate: async () => OPEN_PRINCIPAL, logger: silentLogger(), corsOrigins: [] });
  connect = createServer((request, response) => handler(request, response, () => response.writeHead(404).end()));
  await new Promise<void>((resolve) => connect.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(connect.address() as { port: number }).port}`;
  vss = await startVssServer({ listen: "127.0.0.1:0", store: tiers, limits: DEFAULT_LIMITS, logger: silentLogger() });
});

afterAll(async () => {
  raw?.close();
  await vss?.close(1_000);
  await new Promise((resolve) => connect?.close(resolve));
  await grpcServer?.close();
});

describe("a request with more fields than the limit", () => {
  const flood = encode(WriteRequestSchema, { ...key, value: Buffer.from("v") }, unknownFields(LIMIT));
  // Known fields count too: empty Mutations, each two bytes, would each be decoded into a message.
  const emptyMutations = Buffer.alloc(2 * (LIMIT + 1)).fill(Buffer.from([0x0a, 0x00]));

  it("is refused on gRPC before any store work", async () => {
    const error = await grpcRefusal(KVStoreService.method.write, flood);
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toMatch(TOO_MANY);
    const mutate = await grpcRefusal(KVStoreService.method.mutate, emptyMutations);
    expect(mutate.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(mutate.details).toMatch(TOO_MANY);
    expect(await memory.listAllKeys()).toMatchObject({ keys: [] });
  });

  it("is refused on Connect binary", async () => {
    for (const [method, bytes] of [["Write", flood], ["Mutate", emptyMutations]] as const) {
      const response = await connectBinary(method, bytes);
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ code: "invalid_argument", message: expect.stringMatching(TOO_MANY) });
    }
    expect(await memory.listAllKeys()).toMatchObject({ keys: [] });
  });

  it("is refused by VSS with its message", async () => {
    const put = encode(PutObjectRequestSchema, { storeId: "wallet", transactionItems: [{ key: "k", value: Buffer.from("v"), version: -1n }] }, unknownFields(LIMIT));
    const error = await errorOf(await rawPost(`http://127.0.0.1:${vss.port}/vss/putObjects`, put));
    expect({ status: error.status, code: error.code }).toEqual({ status: 400, code: ErrorCode.INVALID_REQUEST_EXCEPTION });
    expect(error.serverMessage).toMatch(TOO_MANY);
    expect(await memory.listAllKeys({ allStores: true })).toMatchObject({ keys: [] });
  });

  it("is served at the limit", async () => {
    // WriteRequest's own fields (primary_namespace, key, value) and the rest unknown: LIMIT in all.
    const atLimit = encode(WriteRequestSchema, { ...key, key: "at-limit", value: Buffer.from("v") }, unknownFields(LIMIT - 3));
    await grpcRaw(KVStoreService.method.write, atLimit);
    await expect(memory.read({ ...key, storeId: OPEN_PRINCIPAL.storeId, key: "at-limit" })).resolves.toEqual(Buffer.from("v"));
  });
});

describe("a request with a few unknown fields", () => {
  it("is served on gRPC and Connect binary, the unknown fields dropped", async () => {
    await grpcRaw(KVStoreService.method.write, encode(WriteRequestSchema, { ...key, key: "grpc", value: Buffer.from("g") }, FEW_UNKNOWN));
    // Inside a nested message too: appended to the one Mutation, whose length byte then covers them.
    const mutation = encode(MutateRequestSchema, { mutations: [{ ...key, key: "nested", kind: { case: "write", value: { value: Buffer.from("n") } } }] });
    const nested = Buffer.concat([mutation, FEW_UNKNOWN]);
    nested[1] = mutation[1]! + FEW_UNKNOWN.length;
    await grpcRaw(KVStoreService.method.mutate, nested);
    const response = await connectBinary("Write", encode(WriteRequestSchema, { ...key, key: "connect", value: Buffer.from("c") }, FEW_UNKNOWN));
    expect(response.status).toBe(200);
    const stored = (name: string) => memory.read({ ...key, storeId: OPEN_PRINCIPAL.storeId, key: name });
    expect(await Promise.all(["grpc", "nested", "connect"].map(stored))).toEqual(["g", "n", "c"].map((v) => Buffer.from(v)));
  });
});
