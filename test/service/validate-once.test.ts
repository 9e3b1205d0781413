// A request's names are validated once on the server (issue 18): the tiered store checks them and
// hands its tiers proven copies, which neither the primary nor the backup checks again, on every
// surface. A bad name is still refused, with the same message on every surface and by a backend
// used on its own; a proven reference cannot be changed, and a copy with another name is checked.
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { KVStoreService } from "../../gen/tierkv/v1/kvstore_pb.js";
import { OPEN_PRINCIPAL } from "../../src/auth/principal.js";
import { DEFAULT_LIMITS } from "../../src/limits.js";
import { silentLogger } from "../../src/log.js";
import { grpcClientConstructor } from "../../src/rpc/service-definition.js";
import { connectService } from "../../src/server/connect-service.js";
import { MemoryStore } from "../../src/store/memory.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { KeyRef } from "../../src/store/types.js";
import { validKey } from "../../src/store/validate.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { startVssServer, type RunningVssServer } from "../../src/vss/http-server.js";
import { vssStoreId } from "../../src/vss/vss-service.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { VssCallError, VssTestClient } from "../vss/vss-harness.js";

/** How often the rules of names ran: once per key, or per namespace pair, they checked. */
const checked = vi.hoisted(() => ({ keys: 0, namespaces: 0 }));
vi.mock(import("../../src/store/names.js"), async (importOriginal) => {
  const names = await importOriginal();
  return {
    ...names,
    keyProblem: (...args: Parameters<typeof names.keyProblem>) => (checked.keys++, names.keyProblem(...args)),
    namespaceProblem: (...args: Parameters<typeof names.namespaceProblem>) => (checked.namespaces++, names.namespaceProblem(...args)),
  };
});

type Methods = (typeof KVStoreService)["method"];
type RawUnary = (request: unknown, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: unknown) => void) => void;

const primary = new SqliteStore(join(tempDir(), "primary.sqlite"));
const backup = new MemoryStore();
// No ledger replay during the test: it would read and copy keys of its own.
const tiers = new TierStore({ primary, backup, replayIntervalMs: 3_600_000, logger: silentLogger() });
let grpcServer: TestServer;
let raw: grpc.Client;
let http: RunningVssServer;
let base: string;

/** One call through a raw grpc-js client: the TypeScript client would validate names itself. */
function grpcCall<M extends keyof Methods>(method: M, init: MessageInitShape<Methods[M]["input"]>): Promise<unknown> {
  const unary = (raw as unknown as Record<M, RawUnary>)[method].bind(raw);
  return new Promise((resolve, reject) =>
    unary(create(KVStoreService.method[method].input, init), { deadline: Date.now() + 20_000 }, (error, response) => (error ? reject(error) : resolve(response))),
  );
}

const connectCall = (method: string, body: unknown): Promise<Response> =>
  fetch(`${base}/tierkv.v1.KVStoreService/${method}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

beforeAll(async () => {
  grpcServer = await startTestServer(tiers);
  raw = new (grpcClientConstructor(KVStoreService))(grpcServer.address, grpc.credentials.createInsecure());
  http = await startVssServer({
    listen: "127.0.0.1:0",
    store: tiers,
    limits: DEFAULT_LIMITS,
    logger: silentLogger(),
    otherRoutes: connectService({ store: tiers, limits: DEFAULT_LIMITS, authenticate: async () => OPEN_PRINCIPAL, logger: silentLogger(), corsOrigins: [] }),
  });
  base = `http://127.0.0.1:${http.port}`;
});

afterAll(async () => {
  raw?.close();
  await http?.close(1_000);
  await grpcServer?.close();
  removeTempDirs();
});

beforeEach(() => {
  checked.keys = 0;
  checked.namespaces = 0;
});

/** Both tiers hold `ref` (read behind the server's back, after the count was taken). */
async function inBothTiers(ref: KeyRef): Promise<void> {
  await expect(primary.read(ref)).resolves.toBeDefined();
  await expect(backup.read(ref)).resolves.toBeDefined();
}

describe("a request's names are checked once, though the tiered store, its primary and its backup all take them", () => {
  const ref = { storeId: OPEN_PRINCIPAL.storeId, primaryNamespace: "p", secondaryNamespace: "s", key: "k" };

  it("gRPC Write, Remove and Read", async () => {
    await grpcCall("write", { ...ref, value: Buffer.from("v") });
    expect(checked.keys).toBe(1);
    await grpcCall("read", ref);
    expect(checked.keys).toBe(2);
    await inBothTiers(ref);
    checked.keys = 0;
    await grpcCall("remove", ref);
    expect(checked.keys).toBe(1);
  });

  it("gRPC Mutate and Txn: each reference once", async () => {
    const mutations = ["a", "b", "c"].map((key) => ({ ...ref, key, kind: { case: "write" as const, value: { value: Buffer.from(key) } } }));
    await grpcCall("mutate", { mutations });
    expect(checked.keys).toBe(3);
    checked.keys = 0;
    await grpcCall("txn", {
      checks: [{ ...ref, key: "a", expect: { case: "present", value: true } }],
      operations: [
        { ...ref, key: "d", kind: { case: "write", value: { value: Buffer.from("d") } } },
        { ...ref, key: "b", kind: { case: "remove", value: {} } },
      ],
    });
    // One check and two operations; the backup's mirror of the Txn is not checked again.
    expect(checked.keys).toBe(3);
    await inBothTiers({ ...ref, key: "d" });
  });

  it("gRPC ListPage", async () => {
    await grpcCall("listPage", { primaryNamespace: "p", secondaryNamespace: "s" });
    expect(checked.namespaces).toBe(1);
  });

  it("Connect Write", async () => {
    const response = await connectCall("Write", { primaryNamespace: "p", secondaryNamespace: "s", key: "connect", value: Buffer.from("v").toString("base64") });
    expect(response.status).toBe(200);
    expect(checked.keys).toBe(1);
    await inBothTiers({ ...ref, key: "connect" });
  });

  it("VSS put: each item once", async () => {
    await new VssTestClient(`${base}/vss`, "wallet").put([
      ["x", "1", -1],
      ["y", "2", -1],
    ]);
    expect(checked.keys).toBe(2);
    await inBothTiers({ storeId: vssStoreId(OPEN_PRINCIPAL.storeId, "wallet"), primaryNamespace: "", secondaryNamespace: "", key: "y" });
  });
});

/** What a request's error says, whichever way it failed. */
async function messageOf(call: Promise<unknown>): Promise<string> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (error instanceof VssCallError) return error.serverMessage;
  if (error instanceof Response) return ((await error.json()) as { message: string }).message;
  if (error !== null && typeof error === "object" && "details" in error) return String(error.details);
  if (error instanceof Error) return error.message;
  throw new Error("the request succeeded");
}

describe("a bad name is refused everywhere, with the same message", () => {
  it("an LDK key on gRPC, Connect, the tiered store and each backend alone", async () => {
    const bad = { primaryNamespace: "p", secondaryNamespace: "", key: "bad key" };
    const expected = 'Failed to write p/bad key: key contains " "; only A-Z a-z 0-9 _ - are allowed';
    const value = Buffer.from("v");
    const connect = connectCall("Write", { ...bad, value: value.toString("base64") }).then((response) => (response.ok ? response : Promise.reject(response)));
    const messages = await Promise.all(
      [grpcCall("write", { ...bad, value }), connect, tiers.write(bad, value), primary.write(bad, value), backup.write(bad, value)].map(messageOf),
    );
    expect(messages).toEqual(Array(5).fill(expected));
  });

  it("a VSS key on the VSS endpoint and each backend alone", async () => {
    const key = "a\u0001b";
    const ref = { storeId: vssStoreId(OPEN_PRINCIPAL.storeId, "wallet"), primaryNamespace: "", secondaryNamespace: "", key };
    const value = Buffer.from("v");
    const messages = await Promise.all(
      [new VssTestClient(`${base}/vss`, "wallet").put([[key, "v", -1]]), primary.write(ref, value), backup.write(ref, value)].map(messageOf),
    );
    expect(messages).toEqual(Array(3).fill("Failed to write a\\x01b: key contains a control character"));
  });
});

describe("a proven reference", () => {
  const valid = validKey({ primaryNamespace: "p", secondaryNamespace: "", key: "k" }, "write");

  it("cannot be changed", () => {
    expect(() => Object.assign(valid, { key: "../escape" })).toThrow(TypeError);
    expect(valid.key).toBe("k");
  });

  it("proves nothing about a copy with another name", async () => {
    await expect(backup.write({ ...valid, key: "bad key" }, Buffer.from("v"))).rejects.toMatchObject({ code: "invalid-argument" });
    expect(checked.keys).toBe(1);
  });
});
