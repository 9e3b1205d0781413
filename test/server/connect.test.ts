// KVStoreService over Connect (JSON with plain fetch, as curl would) and gRPC-Web (connect-node's
// transport), with CORS and the same authentication and error codes as the gRPC port.
import { createServer, type Server } from "node:http";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KVStoreService } from "../../gen/tierkv/v1/kvstore_pb.js";
import type { Authenticate } from "../../src/auth/authenticator.js";
import { OPEN_PRINCIPAL } from "../../src/auth/principal.js";
import { DEFAULT_LIMITS } from "../../src/limits.js";
import { silentLogger } from "../../src/log.js";
import { connectService } from "../../src/server/connect-service.js";
import { StoreError } from "../../src/store/errors.js";
import { MemoryStore } from "../../src/store/memory.js";
import { TierStore } from "../../src/tier/tier-store.js";

let server: Server;
let base: string;
const store = new TierStore({ primary: new MemoryStore() });
// Callers with the token "secret" are the open principal; anyone else is refused.
const authenticate: Authenticate = async ({ authorization }) => {
  if (authorization === "Bearer secret") return OPEN_PRINCIPAL;
  throw new StoreError("unauthenticated", "missing credentials");
};

beforeAll(async () => {
  const handler = connectService({ store, limits: DEFAULT_LIMITS, authenticate, logger: silentLogger(), corsOrigins: ["https://wallet.example"] });
  server = createServer((request, response) => handler(request, response, () => response.writeHead(404).end()));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await store.close();
});

const post = (method: string, body: unknown, headers: Record<string, string> = { authorization: "Bearer secret" }) =>
  fetch(`${base}/tierkv.v1.KVStoreService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });

describe("Connect JSON (curl, fetch)", () => {
  it("writes and reads a value", async () => {
    const write = await post("Write", { primaryNamespace: "m", key: "k", value: Buffer.from("hello").toString("base64") });
    expect(write.status).toBe(200);
    expect(await write.json()).toEqual({ applied: true, version: expect.stringMatching(/^[1-9][0-9]*$/) });
    const read = await post("Read", { primaryNamespace: "m", key: "k" });
    const body = (await read.json()) as { value: string; revision: string };
    expect(Buffer.from(body.value, "base64").toString()).toBe("hello");
    expect(body.revision).toBe("1");
  });

  it("answers the gRPC port's codes: not_found, invalid_argument, unauthenticated", async () => {
    const absent = await post("Read", { primaryNamespace: "m", key: "absent" });
    expect(absent.status).toBe(404);
    expect(await absent.json()).toMatchObject({ code: "not_found", message: "Failed to read m/absent: no such key" });
    const bad = await post("Write", { primaryNamespace: "m", key: "bad/key" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: "invalid_argument" });
    const anonymous = await post("Read", { primaryNamespace: "m", key: "k" }, {});
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ code: "unauthenticated" });
  });

  it("answers a browser's CORS preflight for an allowed origin only", async () => {
    const allowed = await fetch(`${base}/tierkv.v1.KVStoreService/Read`, {
      method: "OPTIONS",
      headers: { origin: "https://wallet.example", "access-control-request-method": "POST" },
    });
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://wallet.example");
    expect(allowed.headers.get("access-control-allow-headers")).toContain("authorization");
    const other = await fetch(`${base}/tierkv.v1.KVStoreService/Read`, { method: "OPTIONS", headers: { origin: "https://evil.example" } });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("gRPC-Web", () => {
  it("runs Write, Read and Txn through connect-node's gRPC-Web transport", async () => {
    const transport = createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1", interceptors: [(next) => (request) => {
      request.header.set("authorization", "Bearer secret");
      return next(request);
    }] });
    const client = createClient(KVStoreService, transport);
    expect((await client.write({ primaryNamespace: "w", key: "k", value: new Uint8Array([1, 2, 3]) })).applied).toBe(true);
    expect((await client.read({ primaryNamespace: "w", key: "k" })).value).toEqual(new Uint8Array([1, 2, 3]));
    const txn = await client.txn({
      checks: [{ primaryNamespace: "w", key: "k", expect: { case: "revision", value: 1n } }],
      operations: [{ primaryNamespace: "w", key: "k", kind: { case: "write", value: { value: new Uint8Array([4]) } } }],
    });
    expect(txn.succeeded).toBe(true);
    expect(txn.results[0]?.revision).toBe(2n);
  });
});
