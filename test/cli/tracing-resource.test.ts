// Tracing's resource (contract §6.4): service.name is tierkv unless OTEL_SERVICE_NAME says
// otherwise, and OTEL_RESOURCE_ATTRIBUTES reaches the collector with the spans.
import { createServer, type Server } from "node:http";
import { afterAll, afterEach, beforeAll, expect, it, vi } from "vitest";
import { tracingResource } from "../../src/cli/tracing.js";
import { VERSION } from "../../src/version.js";
import { runCli, spawnServer } from "../support/process.js";

/** The JSON bodies an OTLP/HTTP collector received at /v1/traces. */
const exports: unknown[] = [];
let collector: Server;
let collectorUrl: string;

beforeAll(async () => {
  collector = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      if (request.url === "/v1/traces") exports.push(JSON.parse(body));
      response.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  collectorUrl = `http://127.0.0.1:${(collector.address() as { port: number }).port}`;
});

afterAll(() => new Promise<void>((resolve) => collector.close(() => resolve())));
afterEach(() => vi.unstubAllEnvs());

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string };
}

/** The resource attributes of every batch received, as plain key → value maps. */
function exportedResources(): Array<Record<string, string | undefined>> {
  return (exports as Array<{ resourceSpans: Array<{ resource: { attributes: OtlpAttribute[] } }> }>).flatMap((body) =>
    body.resourceSpans.map((spans) => Object.fromEntries(spans.resource.attributes.map((a) => [a.key, a.value.stringValue]))),
  );
}

it("sends a real server's spans with OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES as the resource", async () => {
  const server = await spawnServer(["--primary", "memory:"], {
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl,
      OTEL_SERVICE_NAME: "kv-eu-1",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test,service.namespace=wallets",
    },
  });
  try {
    const result = await runCli(["--server", server.address, "get", "absent"]);
    expect(result.stderr).toContain("no such key");
  } finally {
    // Shutdown flushes the exporter: the batch has arrived once the process is gone.
    expect((await server.kill("SIGTERM")).code).toBe(0);
  }
  const resources = exportedResources();
  expect(resources.length).toBeGreaterThan(0);
  expect(resources[0]).toMatchObject({
    "service.name": "kv-eu-1",
    "service.version": VERSION,
    "service.namespace": "wallets",
    "deployment.environment": "test",
    "telemetry.sdk.name": "opentelemetry",
  });
});

it("names the service tierkv by default, and OTEL_SERVICE_NAME beats a service.name attribute", () => {
  vi.stubEnv("OTEL_SERVICE_NAME", undefined);
  vi.stubEnv("OTEL_RESOURCE_ATTRIBUTES", undefined);
  expect(tracingResource().attributes["service.name"]).toBe("tierkv");
  vi.stubEnv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes,host.name=kv1");
  expect(tracingResource().attributes).toMatchObject({ "service.name": "from-attributes", "host.name": "kv1" });
  vi.stubEnv("OTEL_SERVICE_NAME", "from-service-name");
  expect(tracingResource().attributes["service.name"]).toBe("from-service-name");
});
