// Tracing (contract §6): a span per call and per tier operation, and W3C trace context forwarded
// down a chain, so a write through A → B shows as one trace. An in-memory exporter collects them.
import { trace } from "@opentelemetry/api";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import { RemoteStore } from "../../src/remote/remote-store.js";
import { MemoryStore } from "../../src/store/memory.js";
import { TierStore } from "../../src/tier/tier-store.js";
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
