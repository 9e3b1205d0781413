//! Wiring a running tierkv from its configuration: store URIs → stores → the tiered store, the
//! authenticator, and the servers (gRPC; the HTTP listener with VSS, Connect and gRPC-Web;
//! metrics) composed over them. `tierkv serve` (src/cli/serve.ts) resolves the settings and
//! handles signals; everything it starts is built here.

import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { Authenticator } from "../auth/authenticator.js";
import type { Limits } from "../limits.js";
import { DEFAULT_TIER_HEALTH, SHUTDOWN_GRACE_MS, WATCH_SHARED_POLL_INTERVAL_MS } from "../limits.js";
import type { Logger } from "../log.js";
import { Follower, leaderName } from "../follow/follower.js";
import { ReadOnlyStore } from "../follow/read-only-store.js";
import { openRemoteStore, RemoteStore } from "../remote/remote-store.js";
import { connectService } from "../server/connect-service.js";
import { createMetrics, serveMetrics, type Metrics } from "../server/metrics.js";
import { startServer } from "../server/server.js";
import { StoreError } from "../store/errors.js";
import { isChangeLog, type KVStore, type Quota } from "../store/types.js";
import { HybridClock } from "../tier/hybrid-clock.js";
import { NO_RETRY, type RetryPolicy } from "../tier/retry.js";
import { TierStore, type TierHealthPolicy, type TierName } from "../tier/tier-store.js";
import { takeStopMarker } from "../tier/stop-marker.js";
import { startVssServer, type VssTlsOptions } from "../vss/http-server.js";
import { PostgresStore } from "../store/postgres.js";
import { ChangeFeed } from "../watch/change-feed.js";
import { parseRetention, startPruning } from "../watch/retention.js";
import { SettingsError, type AppConfig } from "./config.js";
import { openStore } from "./open-store.js";

const TIER_NAMES: readonly TierName[] = ["primary", "backup", "ephemeral"];

/** The limits of `config`. */
export function limitsOf(config: AppConfig): Limits {
  const { maxValueBytes, maxBatchItems, maxBatchBytes, maxListKeys, maxConcurrentStreams } = config;
  return { maxValueBytes, maxBatchItems, maxBatchBytes, maxListKeys, maxConcurrentStreams };
}

/** Time limits and breakers of the tiers (contract §4.12); a settings error for bounds that cross. */
export function healthPolicyOf(config: AppConfig): TierHealthPolicy {
  if (config.tierTimeLimitMinMs > config.tierTimeLimitMaxMs) {
    throw new SettingsError("--tier-time-limit-min-ms may not exceed --tier-time-limit-max-ms");
  }
  return {
    ...DEFAULT_TIER_HEALTH,
    timeLimitP99Multiple: config.tierTimeLimitP99Multiple,
    timeLimitMinMs: config.tierTimeLimitMinMs,
    timeLimitMaxMs: config.tierTimeLimitMaxMs,
    breakerFailures: config.breakerFailures,
    breakerFailureMs: config.breakerFailureMs,
    probeMaxDelayMs: config.probeMaxDelayMs,
  };
}

/**
 * Opens every configured tier; on failure closes what was opened. Also returns the tiers that are
 * chained tierkv servers, whose `token_file=` SIGHUP reads again.
 */
export async function openTierStore(config: AppConfig, logger: Logger): Promise<{ store: TierStore; remotes: RemoteStore[] }> {
  const opened: KVStore[] = [];
  const open = async (flag: string, uri: string | undefined, durability: "durable" | "cache"): Promise<KVStore | undefined> => {
    if (uri === undefined) return undefined;
    let store: KVStore;
    try {
      store = await openStore(uri, { durability });
    } catch (error) {
      // A file the URI names that cannot be used (sslrootcert=, token_file=) is a settings error (exit 2).
      if (error instanceof StoreError && error.code === "invalid-argument") throw new SettingsError(`${flag}: ${error.message}`);
      throw error;
    }
    opened.push(store);
    return store;
  };
  try {
    const policy: RetryPolicy = {
      initialDelayMs: config.retryInitialDelayMs,
      maxDelayMs: config.retryMaxDelayMs,
      maxAttempts: config.retryMaxAttempts,
    };
    const retry = Object.fromEntries(
      TIER_NAMES.map((tier) => [tier, config.retryDisable.includes(tier) ? NO_RETRY : policy]),
    ) as Record<TierName, RetryPolicy>;
    // Read (and removed) before the primary opens: a file that does not exist yet starts clean.
    const lastStop = takeStopMarker(config.primary);
    const store = new TierStore({
      primary: (await open("--primary", config.primary, "durable"))!,
      backup: await open("--backup", config.backup, "durable"),
      ephemeral: await open("--ephemeral", config.ephemeral, "cache"),
      ephemeralKeys: config.ephemeralKey,
      retry,
      logger,
      backupPolicy: config.backupPolicy,
      clock: new HybridClock(Date.now, config.maxVersionSkewMs),
      health: healthPolicyOf(config),
      ...(lastStop !== undefined && { lastStop }),
    });
    return { store, remotes: opened.filter((tier) => tier instanceof RemoteStore) };
  } catch (error) {
    await Promise.all(opened.map((store) => store.close()));
    throw error;
  }
}

/**
 * The follower `--follow` asks for, over `store`'s primary backend (which must take exact
 * transactions and keep a change log), and the leader it tails (its token file is read again on
 * SIGHUP, as a chained tier's).
 */
function openFollower(uri: string, store: TierStore, logger: Logger): { follower: Follower; leader: RemoteStore } {
  const primary = store.primaryStore;
  if (!isChangeLog(primary)) {
    throw new SettingsError("--follow needs a sqlite:, postgres:// or memory: primary: the leader's changes are applied there in transactions, and logged for its own watchers");
  }
  let leader: RemoteStore;
  try {
    leader = openRemoteStore(uri);
  } catch (error) {
    if (error instanceof StoreError && error.code === "invalid-argument") throw new SettingsError(`--follow: ${error.message}`);
    throw error;
  }
  return { follower: new Follower({ leader, name: leaderName(uri), primary, logger }), leader };
}

/** Re-reads each chained tier's token file; one that fails keeps its token and is logged. */
function reloadRemoteTokens(remotes: readonly RemoteStore[], logger: Logger): void {
  for (const remote of remotes) {
    try {
      if (remote.reloadToken()) logger.info({ tier: remote.client.address }, "chained tier's token reloaded");
    } catch (error) {
      logger.error({ err: (error as Error).message }, "chained tier's token not reloaded: keeping the previous one");
    }
  }
}

function serverCredentials(config: AppConfig): grpc.ServerCredentials {
  const { tlsCert, tlsKey, tlsClientCa } = config;
  // checkServeSettings made sure the two come together.
  if (tlsCert === undefined || tlsKey === undefined) return grpc.ServerCredentials.createInsecure();
  const read = (flag: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new SettingsError(`${flag} ${path}: ${(error as Error).message}`);
    }
  };
  return grpc.ServerCredentials.createSsl(
    tlsClientCa === undefined ? null : read("--tls-client-ca", tlsClientCa),
    [{ cert_chain: read("--tls-cert", tlsCert), private_key: read("--tls-key", tlsKey) }],
    tlsClientCa !== undefined,
  );
}

/** The authenticator `config` asks for (after `serve` checked its settings). */
export async function openAuthenticator(config: AppConfig, logger: Logger): Promise<Authenticator> {
  // 0 is no limit here (in the identities file, a limit of zero).
  const limits = { maxKeys: config.quotaMaxKeys, maxBytes: config.quotaMaxBytes, maxStores: config.quotaMaxStores };
  const set = Object.entries(limits).filter(([, limit]) => limit > 0);
  const defaultQuota: Quota | undefined = set.length === 0 ? undefined : Object.fromEntries(set);
  try {
    return await Authenticator.open(
      {
        modes: config.auth,
        tokensFile: config.tokensFile,
        jwt: {
          jwksFile: config.jwtJwksFile,
          publicKeyFile: config.jwtPublicKeyFile,
          issuer: config.jwtIssuer,
          audience: config.jwtAudience,
          storeClaim: config.jwtStoreClaim,
          allowNoExp: config.jwtAllowNoExp,
        },
        ...(config.sigsAllowFile !== undefined && { sigsAllowFile: config.sigsAllowFile }),
        ...(defaultQuota !== undefined && { defaultQuota }),
      },
      logger,
    );
  } catch (error) {
    throw new SettingsError((error as Error).message);
  }
}

/** The VSS listener serves HTTPS with the gRPC server's certificate (and client CA) when TLS is on. */
function vssTls(config: AppConfig): VssTlsOptions | undefined {
  const { tlsCert, tlsKey, tlsClientCa } = config;
  if (tlsCert === undefined || tlsKey === undefined) return undefined;
  const read = (flag: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new SettingsError(`${flag} ${path}: ${(error as Error).message}`);
    }
  };
  return {
    cert: read("--tls-cert", tlsCert),
    key: read("--tls-key", tlsKey),
    ...(tlsClientCa !== undefined && { ca: read("--tls-client-ca", tlsClientCa) }),
  };
}

/** A running tierkv: its store, authenticator and servers. */
export interface RunningTierkv {
  readonly store: TierStore;
  readonly authenticator: Authenticator;
  readonly server: Awaited<ReturnType<typeof startServer>>;
  readonly vssServer: Awaited<ReturnType<typeof startVssServer>> | undefined;
  readonly metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  /** With `--follow`: the follower tailing the leader. */
  readonly follower: Follower | undefined;
  /** Re-reads the token files of chained tiers and of the leader (SIGHUP). */
  reloadRemoteTokens(): void;
  /** Lets in-flight calls finish (up to the shutdown grace), then closes the servers and the store. */
  shutdown(): Promise<void>;
}

/**
 * Opens the authenticator and the tiered store `config` names, and starts the servers over them;
 * a failure closes what was opened before it.
 */
export async function startTierkv(config: AppConfig, logger: Logger): Promise<RunningTierkv> {
  const credentials = serverCredentials(config);
  const authenticator = await openAuthenticator(config, logger);
  const { store, remotes } = await openTierStore(config, logger);
  let followed: ReturnType<typeof openFollower> | undefined;
  try {
    followed = config.follow === undefined ? undefined : openFollower(config.follow, store, logger);
  } catch (error) {
    await store.close();
    throw error;
  }
  const follower = followed?.follower;
  // A follower's callers only read: every surface is given a store that refuses mutations.
  const face: KVStore = follower === undefined ? store : new ReadOnlyStore(store, follower.status().leader);
  // Each tier tried once: one that does not answer is logged with its cause and marked down.
  await store.checkTiers();
  const limits = limitsOf(config);
  const changeLog = store.changeLog();
  // Other instances commit to a shared PostgreSQL too: their changes are found by polling.
  const sharedLog = store.primaryStore instanceof PostgresStore;
  const feed =
    changeLog &&
    new ChangeFeed(changeLog, {
      progressIntervalMs: config.watchProgressIntervalMs,
      ...(sharedLog && { pollIntervalMs: WATCH_SHARED_POLL_INTERVAL_MS }),
    });
  const stopPruning = changeLog && startPruning(changeLog, parseRetention(config.watchRetention), logger);
  const metrics: Metrics = createMetrics(store, {
    perStore: config.metricsPerStore,
    ...(feed && { openWatches: () => feed.open }),
    ...(follower !== undefined && { follower }),
  });
  // Every failed start path closes what was opened before it.
  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  let vssServer: Awaited<ReturnType<typeof startVssServer>> | undefined;
  try {
    if (config.metricsListen !== undefined) metricsServer = await serveMetrics(metrics, config.metricsListen);
    server = await startServer({
      listen: config.listen,
      store: face,
      admin: store,
      ...(follower !== undefined && { follower }),
      limits,
      logger,
      credentials,
      authenticate: authenticator.authenticate,
      maxConnectionAgeMs: config.maxConnectionAgeMs,
      observeCall: metrics.observeCall,
      health: store,
      feed,
      streamMaxStallMs: config.streamMaxStallMs,
    });
    if (config.vssListen !== undefined) {
      vssServer = await startVssServer({
        listen: config.vssListen,
        store: face,
        limits,
        logger,
        authenticate: authenticator.authenticate,
        tls: vssTls(config),
        observeCall: metrics.observeCall,
        otherRoutes: connectService({
          store: face,
          limits,
          authenticate: authenticator.authenticate,
          logger,
          corsOrigins: [...config.httpCorsOrigin],
          observeCall: metrics.observeCall,
          feed,
        }),
      });
    }
  } catch (error) {
    stopPruning?.();
    feed?.close();
    await server?.shutdown(0);
    await metricsServer?.close();
    await followed?.leader.close();
    await store.close();
    throw error;
  }
  // Serving reads while it catches up (or copies the leader in full).
  follower?.start();
  const grpcServer = server;
  return {
    store,
    authenticator,
    server: grpcServer,
    vssServer,
    metricsServer,
    follower,
    reloadRemoteTokens: () => reloadRemoteTokens(followed === undefined ? remotes : [...remotes, followed.leader], logger),
    shutdown: async () => {
      // Watches never end by themselves: they are told where to resume, so the grace is for unary calls.
      feed?.close();
      stopPruning?.();
      // The batch being applied commits before the primary closes; the follower resumes after it next time.
      await follower?.close();
      await followed?.leader.close();
      await Promise.all([grpcServer.shutdown(SHUTDOWN_GRACE_MS), vssServer?.close(SHUTDOWN_GRACE_MS)]);
      await metricsServer?.close();
      await store.close();
    },
  };
}
