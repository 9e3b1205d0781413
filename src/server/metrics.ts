//! Prometheus metrics over HTTP (`--metrics-listen`): per-RPC counts and latency, tier counters,
//! the backup backlog, and Node's process metrics.

import { createServer, type Server } from "node:http";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { CallOutcome } from "../rpc/service-definition.js";
import type { StoreError } from "../store/errors.js";
import type { TierStore } from "../tier/tier-store.js";

export interface Metrics {
  readonly registry: Registry;
  /**
   * Records one finished RPC: its method, its error (none on success), its duration and its
   * outcome. A call cancelled before its answer counts under the code `cancelled`.
   */
  observeCall(method: string, error: StoreError | undefined, seconds: number, outcome: CallOutcome): void;
}

/** A counter whose value is read from `value()` at scrape time. */
function mirroredCounter(registry: Registry, name: string, help: string, value: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(value());
    },
  });
}

/** The most stores per-store gauges report, so label cardinality stays bounded. */
const MAX_STORE_LABELS = 1000;

/**
 * `perStore`: also report keys and bytes of each store whose quota is being counted (opt-in:
 * one label value per tenant with a quota, at most MAX_STORE_LABELS).
 */
export function createMetrics(store: TierStore, options: { perStore?: boolean } = {}): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const calls = new Counter({
    name: "tierkv_rpc_requests_total",
    help: "RPCs served, by method and outcome code",
    labelNames: ["method", "code"],
    registers: [registry],
  });
  const latency = new Histogram({
    name: "tierkv_rpc_duration_seconds",
    help: "RPC latency, by method",
    labelNames: ["method"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  mirroredCounter(registry, "tierkv_tier_divergences_total", "mutations that succeeded in some durable tiers and failed in others", () => store.snapshot().divergences);
  mirroredCounter(registry, "tierkv_tier_retries_total", "retries of tier calls", () => store.snapshot().retries);
  mirroredCounter(registry, "tierkv_stale_mutations_total", "mutations acknowledged unapplied because a newer one was applied", () => store.snapshot().staleMutations);
  new Gauge({
    name: "tierkv_backup_owed_keys",
    help: "keys the primary's ledger says the backup lacks (owed under the degraded policy, or unconfirmed)",
    registers: [registry],
    async collect() {
      this.set((await store.backupStatus()).owedKeys);
    },
  });
  new Gauge({
    name: "tierkv_mutations_in_flight_keys",
    help: "keys with a mutation in flight (entries of the versioned lock)",
    registers: [registry],
    collect() {
      this.set(store.snapshot().inFlightKeys);
    },
  });
  if (options.perStore) {
    for (const [name, help, field] of [
      ["tierkv_store_keys", "keys held by each store with a quota", "keys"],
      ["tierkv_store_bytes", "value bytes held by each store with a quota", "bytes"],
    ] as const) {
      new Gauge({
        name,
        help,
        labelNames: ["store"],
        registers: [registry],
        collect() {
          this.reset();
          for (const [storeId, usage] of store.countedUsage(MAX_STORE_LABELS)) this.set({ store: storeId }, usage[field]);
        },
      });
    }
  }
  const byMethod = new Map<string, { latency: Histogram.Internal<"method">; calls: Map<string, Counter.Internal> }>();
  return {
    registry,
    observeCall(method, error, seconds, outcome) {
      const code = outcome === "cancelled" ? "cancelled" : (error?.code ?? "ok");
      // prom-client hashes a label set on every call; the children of a method are looked up once.
      let children = byMethod.get(method);
      if (children === undefined) byMethod.set(method, (children = { latency: latency.labels({ method }), calls: new Map() }));
      let counter = children.calls.get(code);
      if (counter === undefined) children.calls.set(code, (counter = calls.labels({ method, code })));
      counter.inc();
      children.latency.observe(seconds);
    },
  };
}

/** Serves `GET /metrics` on `listen` (host:port); resolves with the bound address. */
export async function serveMetrics(metrics: Metrics, listen: string): Promise<{ address: string; close(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    if (request.method !== "GET" || request.url !== "/metrics") {
      response.writeHead(404).end("not found; metrics are at /metrics\n");
      return;
    }
    metrics.registry.metrics().then(
      (body) => response.writeHead(200, { "content-type": metrics.registry.contentType }).end(body),
      () => response.writeHead(500).end("metrics collection failed\n"),
    );
  });
  const colon = listen.lastIndexOf(":");
  const host = listen.slice(0, colon);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(Number(listen.slice(colon + 1)), host, resolve);
  });
  const port = (server.address() as { port: number }).port;
  return {
    address: `${host}:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
