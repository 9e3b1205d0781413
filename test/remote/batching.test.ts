// The remote backend batches the mutations of one event-loop turn into one Mutate call, and each
// mutation of a batch succeeds or fails on its own, over the wire.
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { afterEach, expect, it } from "vitest";
import { KVStoreService, MutateRequestSchema, type MutateResponse } from "../../gen/tierkv/v1/kvstore_pb.js";
import { grpcClientConstructor } from "../../src/rpc/service-definition.js";
import { silentLogger } from "../../src/log.js";
import { startServer, type RunningServer } from "../../src/server/server.js";
import { MemoryStore } from "../../src/store/memory.js";
import { RemoteStore } from "../../src/remote/remote-store.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { TierkvClient } from "../../src/client/client.js";
import { DEFAULT_LIMITS, type Limits } from "../../src/limits.js";
import type { KeyRef } from "../../src/store/types.js";
import { errorOf } from "../support/store-assertions.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** A server over a tiered MemoryStore (it validates versions, as a server's does) that counts the calls of each method. */
async function countingServer(
  maxValueBytes = 1024,
  limits: Partial<Limits> = {},
): Promise<{ server: RunningServer; store: MemoryStore; calls: Map<string, number> }> {
  const store = new MemoryStore();
  const calls = new Map<string, number>();
  const server = await startServer({
    listen: "127.0.0.1:0",
    store: new TierStore({ primary: store }),
    limits: { ...DEFAULT_LIMITS, maxValueBytes, ...limits },
    logger: silentLogger(),
    observeCall: { ended: (method) => calls.set(method.name, (calls.get(method.name) ?? 0) + 1) },
  });
  cleanup.push(() => server.shutdown(1_000));
  return { server, store, calls };
}

const key = (i: number): KeyRef => ({ primaryNamespace: "monitors", secondaryNamespace: "", key: `m${i}` });

it("sends the mutations of one turn in a single Mutate call, each applied", async () => {
  const { server, store, calls } = await countingServer();
  const remote = new RemoteStore(new TierkvClient({ address: server.address }));
  cleanup.push(() => remote.close());
  await remote.list(key(0)); // connect first, so the burst below is one turn's worth
  await Promise.all([
    ...Array.from({ length: 40 }, (_, i) => remote.write(key(i), Buffer.from(`v${i}`), { version: 10n })),
    remote.remove(key(0), { version: 11n }),
  ]);
  expect(calls.get("Mutate")).toBe(1);
  expect(calls.get("Write")).toBeUndefined();
  expect((await store.list(key(0))).sort()).toEqual(Array.from({ length: 39 }, (_, i) => `m${i + 1}`).sort());
  expect((await store.readVersioned(key(7))).version).toBe(10n);
});

it("fails only the mutations that are wrong, with their own codes and messages", async () => {
  const { server, store } = await countingServer(16);
  const remote = new RemoteStore(new TierkvClient({ address: server.address }));
  cleanup.push(() => remote.close());
  const results = await Promise.allSettled([
    remote.write(key(1), Buffer.from("fine")),
    remote.write(key(2), Buffer.alloc(17)),
    remote.write(key(3), Buffer.from("also fine"), { version: 1n << 63n }),
    remote.remove(key(4)),
  ]);
  expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled"]);
  const tooBig = await errorOf(Promise.reject((results[1] as PromiseRejectedResult).reason));
  expect(tooBig.code).toBe("invalid-argument");
  expect(tooBig.message).toContain("the largest accepted is 16 bytes");
  expect((await errorOf(Promise.reject((results[2] as PromiseRejectedResult).reason))).message).toContain("version");
  expect(await store.list(key(0))).toEqual(["m1"]);
});

it("answers a mutation that is neither a write nor a remove with INVALID_ARGUMENT for that item", async () => {
  const { server } = await countingServer();
  // The typed client cannot express an empty mutation: send one with a raw grpc-js client.
  const Raw = grpcClientConstructor(KVStoreService);
  const raw = new Raw(server.address, grpc.credentials.createInsecure());
  cleanup.push(async () => raw.close());
  const request = create(MutateRequestSchema, { mutations: [{ primaryNamespace: "a", key: "k" }] });
  const response = await new Promise<MutateResponse>((resolve, reject) =>
    (raw as unknown as { mutate: (r: unknown, cb: (e: Error | null, res?: MutateResponse) => void) => void }).mutate(
      request,
      (error, result) => (error ? reject(error) : resolve(result!)),
    ),
  );
  expect(response.results).toHaveLength(1);
  expect(response.results[0]!.code).toBe(grpc.status.INVALID_ARGUMENT);
  expect(response.results[0]!.message).toContain("neither a write nor a remove");
});

it("splits a batch the remote refuses as a whole, until every mutation is applied", async () => {
  // The remote takes at most 4 mutations and 3,000 value bytes per call; this side does not know.
  const { server, store, calls } = await countingServer(1024, { maxBatchItems: 4, maxBatchBytes: 3_000 });
  const remote = new RemoteStore(new TierkvClient({ address: server.address }));
  cleanup.push(() => remote.close());
  await remote.list(key(0));
  const outcomes = await Promise.all(Array.from({ length: 40 }, (_, i) => remote.write(key(i), Buffer.alloc(1000, i))));
  expect(outcomes).toEqual(Array(40).fill("applied"));
  expect(await store.list(key(0))).toHaveLength(40);
  expect(calls.get("Mutate")!).toBeGreaterThan(10);
});

it("sizes batches to the limits in the URI, checking the size before adding a mutation", async () => {
  const { server, calls } = await countingServer(4096);
  const remote = new RemoteStore(new TierkvClient({ address: server.address }), { maxBatchBytes: 10 * 1024, maxBatchItems: 100 });
  cleanup.push(() => remote.close());
  await remote.list(key(0));
  // 3,000 value bytes + 2 KiB overhead each: two fit in 10 KiB, a third would not.
  await Promise.all(Array.from({ length: 6 }, (_, i) => remote.write(key(i), Buffer.alloc(3000))));
  expect(calls.get("Mutate")).toBe(3);
});

it("rejects a mutation with a bad key on its own, before it joins a batch", async () => {
  const { server, store } = await countingServer();
  const remote = new RemoteStore(new TierkvClient({ address: server.address }));
  cleanup.push(() => remote.close());
  const results = await Promise.allSettled([
    remote.write(key(1), Buffer.from("ok")),
    remote.write({ ...key(2), key: "bad/key" }, Buffer.from("x")),
    remote.write(key(3), Buffer.from("ok")),
  ]);
  expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
  expect((await store.list(key(0))).sort()).toEqual(["m1", "m3"]);
});

it("settles every queued mutation on close()", async () => {
  const { server, store } = await countingServer();
  const remote = new RemoteStore(new TierkvClient({ address: server.address }));
  const writes = Array.from({ length: 10 }, (_, i) => remote.write(key(i), Buffer.from("v")));
  await remote.close();
  expect(await Promise.all(writes)).toEqual(Array(10).fill("applied"));
  expect(await store.list(key(0))).toHaveLength(10);
});
