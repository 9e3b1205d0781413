// Metrics (contract §6.1) as a real scrape of /metrics sees them: grpc-prometheus's names and
// labels with grpc-go's code names, tier failures, resync progress and build info.
import { afterAll, beforeAll, expect, it } from "vitest";
import { createMetrics, serveMetrics } from "../../src/server/metrics.js";
import { MemoryStore } from "../../src/store/memory.js";
import { NO_RETRY } from "../../src/tier/retry.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { VERSION } from "../../src/version.js";
import { FlakyStore } from "../support/fault-stores.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { errorOf } from "../support/store-assertions.js";

const key = { primaryNamespace: "m", secondaryNamespace: "", key: "k" };
// The backup's first write fails: a divergence and one failure of the backup tier.
const backup = new FlakyStore(new MemoryStore(), 1, "unavailable", ["write"]);
const store = new TierStore({ primary: new MemoryStore(), backup, retry: { backup: NO_RETRY } });
const metrics = createMetrics(store);
let server: TestServer;
let endpoint: Awaited<ReturnType<typeof serveMetrics>>;

beforeAll(async () => {
  server = await startTestServer(store, { observeCall: metrics.observeCall });
  endpoint = await serveMetrics(metrics, "127.0.0.1:0");
});

afterAll(async () => {
  await endpoint.close();
  await server.close();
});

async function scrape(): Promise<string> {
  const response = await fetch(`http://${endpoint.address}/metrics`);
  expect(response.status).toBe(200);
  return response.text();
}

const read = 'grpc_type="unary",grpc_service="tierkv.v1.KVStoreService",grpc_method="Read",surface="grpc"';
const write = 'grpc_type="unary",grpc_service="tierkv.v1.KVStoreService",grpc_method="Write",surface="grpc"';

it("counts calls by type, service, method and grpc-go's code name, and times them", async () => {
  expect((await errorOf(server.client.write(key, Buffer.from("v")))).code).toBe("unavailable");
  await server.client.write(key, Buffer.from("v"));
  expect((await errorOf(server.client.read({ ...key, key: "absent" }))).code).toBe("not-found");
  await server.client.read(key);
  const text = await scrape();
  expect(text).toContain(`grpc_server_started_total{${read}} 2`);
  expect(text).toContain(`grpc_server_started_total{${write}} 2`);
  expect(text).toContain(`grpc_server_handled_total{${read},grpc_code="OK"} 1`);
  expect(text).toContain(`grpc_server_handled_total{${read},grpc_code="NotFound"} 1`);
  expect(text).toContain(`grpc_server_handled_total{${write},grpc_code="OK"} 1`);
  expect(text).toContain(`grpc_server_handled_total{${write},grpc_code="Unavailable"} 1`);
  expect(text).toContain(`grpc_server_handling_seconds_count{${read}} 2`);
  expect(text).toMatch(new RegExp(`grpc_server_handling_seconds_bucket\\{le="5",${read}\\} 2`));
  // No store error code (`not-found`) leaks into a label.
  expect(text).not.toMatch(/grpc_code="[a-z-]+"/);
  expect(text).toContain('tierkv_tier_failures_total{tier="backup"} 1');
  expect(text).toContain('tierkv_tier_failures_total{tier="primary"} 0');
  expect(text).toContain("tierkv_tier_divergences_total 1");
});

it("reports the progress of the last resync", async () => {
  const idle = await scrape();
  expect(idle).toContain("tierkv_resync_running 0");
  expect(idle).toContain("tierkv_resync_primary_keys 0");
  await store.resync();
  const text = await scrape();
  expect(text).toContain("tierkv_resync_running 0");
  expect(text).toContain("tierkv_resync_primary_keys 1");
  expect(text).toContain("tierkv_resync_primary_keys_scanned 1");
  // The backup has the key already: the second write above reached both tiers.
  expect(text).toContain('tierkv_resync_keys{outcome="unchanged"} 1');
  expect(text).toContain('tierkv_resync_keys{outcome="copied"} 0');
});

it("says which version runs, on which Node.js, and exports Node's process metrics", async () => {
  const text = await scrape();
  expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  expect(text).toContain(`tierkv_build_info{version="${VERSION}",node_version="${process.version}"} 1`);
  expect(text).toMatch(/^process_cpu_seconds_total \d/m);
  expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
});
