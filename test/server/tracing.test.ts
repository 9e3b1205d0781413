// Tracing (contract §6): a span per call and per tier operation, and W3C trace context forwarded
// down a chain, so a write through A → B shows as one trace. An in-memory exporter collects them.
import { trace } from "@opentelemetry/api";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import { RemoteStore } from "../../src/remote/remote-store.js";
import { MemoryStore } from "../../src/store/memory.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { DEFAULT_LIMITS } from "../../src/limits.js";
import { silentLogger } from "../../src/log.js";
import { connectService } from "../../src/server/connect-service.js";
import { OPEN_PRINCIPAL } from "../../src/auth/principal.js";
import { startVssServer } from "../../src/vss/http-server.js";
import { startTestServer, type TestServer } from "../support/server.js";

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
let a: TestServer;
let b: TestServer;

beforeAll(async () => {
  provider.register();
  b = await startTestServer(new TierStore({ primary: new MemoryStore() }));
  const backup = new RemoteStore(new TierkvClient({ address: b.address }));
  a = await startTestServer(new TierStore({ primary: new MemoryStore(), backup }));
});

afterAll(async () => {
  await a.close();
  await b.close();
  await provider.shutdown();
  trace.disable();
});

it("shows a write through A → B as one trace: A's call, A's tiers, B's call", async () => {
  exporter.reset();
  await a.client.write({ primaryNamespace: "m", secondaryNamespace: "", key: "k" }, Buffer.from("v"));
  await provider.forceFlush();
  const spans = exporter.getFinishedSpans();
  const names = spans.map((span) => span.name);
  expect(names).toEqual(
    expect.arrayContaining(["tierkv.v1.KVStoreService/Write", "tier primary", "tier backup", "tierkv.v1.KVStoreService/Mutate"]),
  );
  const traceIds = new Set(spans.map((span) => span.spanContext().traceId));
  expect(traceIds.size).toBe(1);
  const write = spans.find((span) => span.name === "tierkv.v1.KVStoreService/Write")!;
  expect(write.attributes["tierkv.store"]).toBe("default");
  // B's call is a descendant of A's backup tier span.
  const backupSpan = spans.find((span) => span.name === "tier backup")!;
  const atB = spans.find((span) => span.name === "tierkv.v1.KVStoreService/Mutate")!;
  expect(atB.parentSpanContext?.traceId).toBe(backupSpan.spanContext().traceId);
  expect(backupSpan.spanContext().traceId).toBe(atB.spanContext().traceId);
});

// Issue 18: the HTTP surfaces make the same server spans, their parent the caller's traceparent.
it("makes a server span for Connect, gRPC-Web and VSS calls too, under the caller's trace", async () => {
  const store = new TierStore({ primary: new MemoryStore() });
  const vss = await startVssServer({
    listen: "127.0.0.1:0",
    store,
    limits: DEFAULT_LIMITS,
    logger: silentLogger(),
    otherRoutes: connectService({ store, limits: DEFAULT_LIMITS, authenticate: async () => OPEN_PRINCIPAL, logger: silentLogger(), corsOrigins: [] }),
  });
  try {
    exporter.reset();
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const traceparent = `00-${traceId}-b7ad6b7169203331-01`;
    const read = await fetch(`http://${vss.address}/tierkv.v1.KVStoreService/Read`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent },
      body: JSON.stringify({ primaryNamespace: "m", key: "absent" }),
    });
    expect(read.status).toBe(404);
    const get = await fetch(`http://${vss.address}/vss/getObject`, { method: "POST", headers: { traceparent }, body: new Uint8Array([0x0a, 0x01, 0x73, 0x12, 0x01, 0x6b]) });
    expect(get.status).toBe(404);
    await provider.forceFlush();
    const spans = exporter.getFinishedSpans();
    const connect = spans.find((span) => span.name === "tierkv.v1.KVStoreService/Read")!;
    expect(connect.attributes).toMatchObject({ "rpc.system": "connect_rpc", "tierkv.store": "default" });
    expect(connect.spanContext().traceId).toBe(traceId);
    const vssSpan = spans.find((span) => span.name === "vss/getObject")!;
    expect(vssSpan.attributes).toMatchObject({ "rpc.system": "vss" });
    expect(vssSpan.spanContext().traceId).toBe(traceId);
    expect(vssSpan.status.code).toBe(2); // ERROR: not-found
  } finally {
    await vss.close(1000);
    await store.close();
  }
});
