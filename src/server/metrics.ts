//! Prometheus metrics over HTTP (`--metrics-listen`): per-call counts and latency of every surface
//! under grpc-prometheus's names (plus a `surface` label), tier counters, the backup backlog, resync progress, quota usage,
//! build info and Node's process metrics.

import { createServer, type Server } from "node:http";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { parseHostPort } from "../host-port.js";
import { grpcCodeName } from "../rpc/status.js";
import type { CallMethod, CallObserver } from "../service/call.js";
import type { TierCondition, TierStore } from "../tier/tier-store.js";
import type { FollowerStatus } from "../follow/follower.js";
import { VERSION } from "../version.js";

export interface Metrics {
  readonly registry: Registry;
  /** Counts each call of every surface as it starts and ends (a call cancelled before its answer ends `Canceled`). */
  readonly observeCall: CallObserver;
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

/** A gauge whose value is read from `value()` at scrape time. */
function mirroredGauge(registry: Registry, name: string, help: string, value: () => number | Promise<number>): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    async collect() {
      this.set(await value());
    },
  });
}

/** The most stores per-store gauges report, so label cardinality stays bounded. */
const MAX_STORE_LABELS = 1000;

/** grpc-prometheus's labels, and the surface the call came in on (grpc, connect, grpc-web, vss). */
const RPC_LABELS = ["grpc_type", "grpc_service", "grpc_method", "surface"] as const;
type RpcLabel = (typeof RPC_LABELS)[number];

/** grpc-prometheus's metrics: what was called, how it ended, how long it took. */
function rpcMetrics(registry: Registry): CallObserver {
  const started = new Counter({
    name: "grpc_server_started_total",
    help: "RPCs started on the server",
    labelNames: RPC_LABELS,
    registers: [registry],
  });
  const handled = new Counter({
    name: "grpc_server_handled_total",
    help: "RPCs completed on the server, whatever their status",
    labelNames: [...RPC_LABELS, "grpc_code"],
    registers: [registry],
  });
  const handling = new Histogram({
    name: "grpc_server_handling_seconds",
    help: "time from an RPC's start to its answer",
    labelNames: RPC_LABELS,
    // Finer than grpc-prometheus's defaults at the low end: most calls take well under 5 ms.
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  interface Children {
    readonly started: Counter.Internal;
    readonly handling: Histogram.Internal<RpcLabel>;
    readonly handled: Map<string, Counter.Internal>;
  }
  // prom-client hashes a label set on every call; a method's children are looked up once (the
  // server makes one RpcMethod per method).
  const byMethod = new Map<CallMethod, Children>();
  const labelsOf = (method: CallMethod): Record<RpcLabel, string> => ({ grpc_type: method.type, grpc_service: method.service, grpc_method: method.name, surface: method.surface });
  const childrenOf = (method: CallMethod): Children => {
    let children = byMethod.get(method);
    if (children === undefined) {
      const labels = labelsOf(method);
      byMethod.set(method, (children = { started: started.labels(labels), handling: handling.labels(labels), handled: new Map() }));
    }
    return children;
  };
  return {
    started(method) {
      childrenOf(method).started.inc();
    },
    ended(method, error, seconds, outcome) {
      const children = childrenOf(method);
      const code = outcome === "cancelled" ? "Canceled" : grpcCodeName(error);
      let counter = children.handled.get(code);
      if (counter === undefined) {
        counter = handled.labels({ ...labelsOf(method), grpc_code: code });
        children.handled.set(code, counter);
      }
      counter.inc();
      children.handling.observe(seconds);
    },
  };
}

/**
 * `perStore`: also report keys and bytes of each store whose quota is being counted, and its
 * quota (opt-in: one label value per tenant with a quota, at most MAX_STORE_LABELS; a VSS user's
 * store ids are one tenant, usage-group.ts). `follower`: this instance follows a leader (its lag
 * is reported; zeros otherwise, so one dashboard fits all).
 */
export function createMetrics(
  store: TierStore,
  options: { perStore?: boolean; openWatches?: () => number; follower?: { status(): FollowerStatus } } = {},
): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: "tierkv_build_info",
    help: "always 1; the labels say which tierkv and which Node.js run",
    labelNames: ["version", "node_version"],
    registers: [registry],
  }).set({ version: VERSION, node_version: process.version }, 1);
  const observeCall = rpcMetrics(registry);

  mirroredCounter(registry, "tierkv_tier_divergences_total", "mutations that succeeded in some durable tiers and failed in others", () => store.snapshot().divergences);
  mirroredCounter(registry, "tierkv_tier_retries_total", "retries of tier calls", () => store.snapshot().retries);
  mirroredCounter(registry, "tierkv_stale_mutations_total", "mutations acknowledged unapplied because a newer one was applied", () => store.snapshot().staleMutations);
  new Counter({
    name: "tierkv_tier_failures_total",
    help: "tier calls that failed for the tier's own reasons (unavailable, too slow, refused credentials), after retries",
    labelNames: ["tier"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [tier, failures] of Object.entries(store.snapshot().tierFailures)) this.inc({ tier }, failures);
    },
  });
  mirroredGauge(registry, "tierkv_backup_owed_keys", "keys the primary's ledger says the backup lacks (owed under the degraded policy, or unconfirmed)", async () => (await store.backupStatus()).owedKeys);
  mirroredGauge(registry, "tierkv_mutations_in_flight_keys", "keys with a mutation in flight (entries of the versioned lock)", () => store.snapshot().inFlightKeys);

  const openWatches = options.openWatches;
  if (openWatches !== undefined) mirroredGauge(registry, "tierkv_watches", "Watch streams open on this server", () => openWatches());
  tierConditionMetrics(registry, store);
  followerMetrics(registry, options.follower);
  mirroredGauge(registry, "tierkv_resync_running", "1 while a resync runs", () => (store.snapshot().resyncRunning ? 1 : 0));
  mirroredGauge(registry, "tierkv_resync_primary_keys", "keys the primary held when the running (or last) resync started", () => store.snapshot().resync?.primaryKeys ?? 0);
  mirroredGauge(registry, "tierkv_resync_primary_keys_scanned", "of those, how many the running (or last) resync has passed", () => store.snapshot().resync?.primaryScanned ?? 0);
  new Gauge({
    name: "tierkv_resync_keys",
    help: "keys the running (or last) resync copied to the backup, removed from it, or found unchanged",
    labelNames: ["outcome"],
    registers: [registry],
    collect() {
      const progress = store.snapshot().resync;
      for (const outcome of ["copied", "removed", "unchanged"] as const) this.set({ outcome }, progress?.[outcome] ?? 0);
    },
  });

  if (options.perStore) {
    const perStore = (name: string, help: string, value: (usage: Awaited<ReturnType<TierStore["countedUsage"]>>[number]) => number | undefined): void => {
      new Gauge({
        name,
        help,
        labelNames: ["store"],
        registers: [registry],
        async collect() {
          const counted = await store.countedUsage(MAX_STORE_LABELS);
          this.reset();
          for (const entry of counted) {
            const current = value(entry);
            if (current !== undefined) this.set({ store: entry[0] }, current);
          }
        },
      });
    };
    // A VSS user's stores share one quota: one series, labelled with their prefix `vss:<user>:`.
    perStore("tierkv_store_keys", "keys held by each store with a quota (a VSS user: all its store ids)", ([, usage]) => usage.keys);
    perStore("tierkv_store_bytes", "value bytes held by each store with a quota (a VSS user: all its store ids)", ([, usage]) => usage.bytes);
    perStore("tierkv_store_ids", "store ids holding keys, of each store with a quota (a VSS user: its store ids; else 1 or 0)", ([, usage]) => usage.stores);
    perStore("tierkv_store_quota_keys", "most keys each store may hold (stores with a key quota)", ([, , quota]) => quota.maxKeys);
    perStore("tierkv_store_quota_bytes", "most value bytes each store may hold (stores with a byte quota)", ([, , quota]) => quota.maxBytes);
    perStore("tierkv_store_quota_ids", "most store ids holding keys each store may have (stores with a store-id cap)", ([, , quota]) => quota.maxStores);
  }
  return { registry, observeCall };
}

/** Each tier's breaker and time limit (contract §4.12), and healing after an unclean stop (§4.13). */
function tierConditionMetrics(registry: Registry, store: TierStore): void {
  const perTier = (name: string, help: string, value: (condition: TierCondition) => number, kind: "gauge" | "counter" = "gauge"): void => {
    const collect = function (this: Gauge | Counter): void {
      this.reset();
      for (const [tier, condition] of Object.entries(store.snapshot().tiers)) {
        if (this instanceof Gauge) this.set({ tier }, value(condition));
        else this.inc({ tier }, value(condition));
      }
    };
    if (kind === "gauge") new Gauge({ name, help, labelNames: ["tier"], registers: [registry], collect });
    else new Counter({ name, help, labelNames: ["tier"], registers: [registry], collect });
  };
  perTier("tierkv_tier_up", "1 while the tier's circuit breaker is closed, 0 while the tier is down", (c) => (c.state === "up" ? 1 : 0));
  perTier("tierkv_tier_breaker_transitions_total", "circuit breaker transitions (up to down and back)", (c) => c.transitions, "counter");
  perTier("tierkv_tier_down_seconds_total", "time the tier spent down, the current spell included", (c) => c.downMs / 1000, "counter");
  perTier("tierkv_tier_time_limit_seconds", "the time limit a tier call's attempt gets now (a multiple of its recent p99, bounded)", (c) => c.timeLimitMs / 1000);
  mirroredCounter(registry, "tierkv_backup_skipped_writes_total", "durable mutations acknowledged without trying the backup because it was down (owed)", () => store.snapshot().skippedBackupWrites);
  mirroredGauge(registry, "tierkv_last_stop_clean", "1 when the server's previous stop was clean (or it cannot tell), 0 after an unclean one", () => (store.snapshot().lastStopClean ? 1 : 0));
  mirroredGauge(registry, "tierkv_healing", "1 while the backup is healed after an unclean stop", () => (store.snapshot().healing ? 1 : 0));
  mirroredCounter(registry, "tierkv_heals_total", "heals of the backup started after an unclean stop", () => store.snapshot().heals);
}

/** A follower's link to its leader and its lag (contract §9.5); on a leader, 0 throughout. */
function followerMetrics(registry: Registry, follower: { status(): FollowerStatus } | undefined): void {
  const of = (value: (status: FollowerStatus) => number) => (): number => (follower === undefined ? 0 : value(follower.status()));
  mirroredGauge(registry, "tierkv_following", "1 when this instance follows a leader (serve --follow), else 0", of(() => 1));
  mirroredGauge(registry, "tierkv_follower_connected", "1 while the follower's watch of its leader is open", of((status) => (status.connected ? 1 : 0)));
  mirroredGauge(registry, "tierkv_follower_lag_changes", "changes the leader committed that the follower has not applied yet", of((status) => status.lagChanges));
  mirroredGauge(
    registry,
    "tierkv_follower_lag_seconds",
    "while the follower lags: seconds since the commit of the oldest change it has not applied (or of the last it applied); 0 when caught up",
    of((status) => status.lagSeconds),
  );
  mirroredCounter(registry, "tierkv_follower_applied_changes_total", "changes of the leader the follower applied", of((status) => status.appliedChanges));
  mirroredCounter(registry, "tierkv_follower_full_copies_total", "full copies of the leader the follower made", of((status) => status.fullCopies));
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
  const { host, port: requested } = parseHostPort(listen, "--metrics-listen");
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(requested, host, resolve);
  });
  const port = (server.address() as { port: number }).port;
  return {
    address: `${host}:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
