//! `tierkv serve`: its settings and their checks, `--print-config`, and the signals; the stores and
//! servers it runs are wired in src/app/start.ts.

import { startTierkv } from "../app/start.js";
import { checkStoreUri } from "../app/open-store.js";
import { isLoopbackAddress } from "../host-port.js";
import {
  DEFAULT_LIMITS,
  DEFAULT_LISTEN,
  DEFAULT_MAX_VERSION_SKEW_MS,
  DEFAULT_QUOTA_SETTINGS,
  DEFAULT_RETRY,
  DEFAULT_STREAM_MAX_STALL_MS,
  DEFAULT_TIER_HEALTH,
  DEFAULT_WATCH_PROGRESS_INTERVAL_MS,
  DEFAULT_WATCH_RETENTION_CHANGES,
  DEFAULT_WATCH_RETENTION_MS,
} from "../limits.js";
import { AUTH_MODES, type AuthMode } from "../auth/authenticator.js";
import { startTracing } from "./tracing.js";
import { LOG_LEVELS, createLogger } from "../log.js";
import { StoreError } from "../store/errors.js";
import { redactStoreUri } from "../store/redact.js";
import { parseStoreUri } from "../store/store-uri.js";
import { parseKeyPath } from "../store/validate.js";
import { DEFAULT_EPHEMERAL_KEYS } from "../tier/ephemeral-keys.js";
import type { BackupPolicy, TierName } from "../tier/tier-store.js";
import { parseRetention } from "../watch/retention.js";
import { healthPolicyOf } from "../app/start.js";
import {
  listOf,
  oneOf,
  parseNonNegativeInteger,
  parseOptionalString,
  parsePositiveInteger,
  parseString,
  parseBoolean,
  commaListOf,
  parseStringList,
  SettingsError,
  toConfigFile,
  type Setting,
  type SettingsOf,
} from "./settings.js";

const TIER_NAMES: readonly TierName[] = ["primary", "backup", "ephemeral"];
const BACKUP_POLICIES: readonly BackupPolicy[] = ["required", "degraded"];

export const SERVE_SETTINGS = {
  listen: {
    flag: "--listen <host:port>",
    description: "address to serve gRPC on (port 0 picks a free port)",
    defaultValue: DEFAULT_LISTEN,
    parse: parseString,
  } satisfies Setting<string>,
  primary: {
    flag: "--primary <uri>",
    description: "primary store URI: sqlite:PATH, postgres://…, fs:DIR (an LDK data directory), grpc(s)://host:port or memory:",
    defaultValue: "sqlite:./data/tierkv.db",
    parse: parseString,
  } satisfies Setting<string>,
  backup: {
    flag: "--backup <uri>",
    description: "backup store URI, written with the primary in the success path (none by default)",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
  backupPolicy: {
    flag: "--backup-policy <policy>",
    description:
      "required: a write fails unless the backup has it; degraded: if the backup stays down, acknowledge from the primary and replay later",
    defaultValue: "required",
    parse: oneOf(BACKUP_POLICIES),
  } satisfies Setting<BackupPolicy>,
  ephemeral: {
    flag: "--ephemeral <uri>",
    description: "ephemeral (cache) store URI for the ephemeral keys: memory: or sqlite:PATH (none by default)",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
  ephemeralKey: {
    flag: "--ephemeral-key <ns/sub/key...>",
    description: "a key routed to the ephemeral tier (repeatable; replaces the defaults)",
    defaultValue: [...DEFAULT_EPHEMERAL_KEYS],
    parse: parseStringList,
  } satisfies Setting<string[]>,
  follow: {
    flag: "--follow <uri>",
    description:
      "follow a leader read-only: grpc://host:port?token_file=FILE (grpcs:// with ca, cert, key), a token with the replicate role; its changes are applied to --primary and writes here are refused",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
  retryInitialDelayMs: {
    flag: "--retry-initial-delay-ms <ms>",
    description: "bound of the first retry's random delay; doubles per retry",
    defaultValue: DEFAULT_RETRY.initialDelayMs,
    parse: parseNonNegativeInteger,
  } satisfies Setting<number>,
  retryMaxDelayMs: {
    flag: "--retry-max-delay-ms <ms>",
    description: "largest retry delay bound",
    defaultValue: DEFAULT_RETRY.maxDelayMs,
    parse: parseNonNegativeInteger,
  } satisfies Setting<number>,
  retryMaxAttempts: {
    flag: "--retry-max-attempts <n>",
    description: "attempts per tier call, the first included (never past the caller's deadline)",
    defaultValue: DEFAULT_RETRY.maxAttempts,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  retryDisable: {
    flag: "--retry-disable <tier...>",
    description: "tiers whose calls are not retried (for backends that retry by themselves)",
    defaultValue: [] as TierName[],
    parse: listOf(TIER_NAMES),
  } satisfies Setting<TierName[]>,
  tierTimeLimitP99Multiple: {
    flag: "--tier-time-limit-p99-multiple <n>",
    description: "a tier call's time limit is this multiple of the tier's recent p99 (between the two bounds below)",
    defaultValue: DEFAULT_TIER_HEALTH.timeLimitP99Multiple,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  tierTimeLimitMinMs: {
    flag: "--tier-time-limit-min-ms <ms>",
    description: "the smallest time limit of a tier call",
    defaultValue: DEFAULT_TIER_HEALTH.timeLimitMinMs,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  tierTimeLimitMaxMs: {
    flag: "--tier-time-limit-max-ms <ms>",
    description: "the largest time limit of a tier call (also the limit before its p99 is known)",
    defaultValue: DEFAULT_TIER_HEALTH.timeLimitMaxMs,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  breakerFailures: {
    flag: "--breaker-failures <n>",
    description: "a tier is marked down after this many failures in a row",
    defaultValue: DEFAULT_TIER_HEALTH.breakerFailures,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  breakerFailureMs: {
    flag: "--breaker-failure-ms <ms>",
    description: "… or after failing this long without a success",
    defaultValue: DEFAULT_TIER_HEALTH.breakerFailureMs,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  probeMaxDelayMs: {
    flag: "--probe-max-delay-ms <ms>",
    description: "largest delay between probes of a tier that is down (from 100 ms, doubling)",
    defaultValue: DEFAULT_TIER_HEALTH.probeMaxDelayMs,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  maxValueBytes: {
    flag: "--max-value-bytes <n>",
    description: "largest value a write accepts, in bytes",
    defaultValue: DEFAULT_LIMITS.maxValueBytes,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  maxBatchItems: {
    flag: "--max-batch-items <n>",
    description: "most mutations in one Mutate, or checks and operations in one Txn",
    defaultValue: DEFAULT_LIMITS.maxBatchItems,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  maxBatchBytes: {
    flag: "--max-batch-bytes <n>",
    description: "most value bytes in one Mutate or Txn",
    defaultValue: DEFAULT_LIMITS.maxBatchBytes,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  maxListKeys: {
    flag: "--max-list-keys <n>",
    description: "most keys an unpaged List returns; larger namespaces need ListPage",
    defaultValue: DEFAULT_LIMITS.maxListKeys,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  maxConcurrentStreams: {
    flag: "--max-concurrent-streams <n>",
    description: "most concurrent calls per client connection (HTTP/2 streams)",
    defaultValue: DEFAULT_LIMITS.maxConcurrentStreams,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  maxVersionSkewMs: {
    flag: "--max-version-skew-ms <ms>",
    description: "how far ahead of the server's clock a caller's version may be",
    defaultValue: DEFAULT_MAX_VERSION_SKEW_MS,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  tlsCert: {
    flag: "--tls-cert <file>",
    description: "PEM certificate chain: serve gRPC over TLS (with --tls-key)",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
  tlsKey: {
    flag: "--tls-key <file>",
    description: "PEM private key of --tls-cert",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
  tlsClientCa: {
    flag: "--tls-client-ca <file>",
    description: "PEM CA bundle: require client certificates signed by it (mutual TLS)",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
  auth: {
    flag: "--auth <mode...>",
    description: "how callers are identified: none (loopback only), tokens, jwt, mtls, sigs (LDK Node's VSS signature header); several may be given (tokens,jwt)",
    defaultValue: ["none"] as AuthMode[],
    parse: commaListOf(AUTH_MODES),
  } satisfies Setting<AuthMode[]>,
  tokensFile: {
    flag: "--tokens-file <file>",
    description: "identities file: token hashes and certificate subjects with their store, roles and quota (see `tierkv token add`)",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
  jwtJwksFile: {
    flag: "--jwt-jwks-file <file>",
    description: "JWKS document with the keys JWTs are signed with (--auth jwt)",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
  jwtPublicKeyFile: {
    flag: "--jwt-public-key-file <file>",
    description: "PEM public key JWTs are signed with (--auth jwt; instead of --jwt-jwks-file)",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
  jwtIssuer: {
    flag: "--jwt-issuer <iss>",
    description: "required iss claim of JWTs",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
  jwtAudience: {
    flag: "--jwt-audience <aud>",
    description: "required aud claim of JWTs",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
  jwtStoreClaim: {
    flag: "--jwt-store-claim <claim>",
    description: "the JWT claim that names the caller's store",
    defaultValue: "sub",
    parse: parseString,
  } satisfies Setting<string>,
  jwtAllowNoExp: {
    flag: "--jwt-allow-no-exp",
    description: "accept JWTs without an exp claim (refused by default, as vss-server does)",
    defaultValue: false,
    parse: parseBoolean,
  } satisfies Setting<boolean>,
  sigsAllowFile: {
    flag: "--sigs-allow-file <file>",
    description: "--auth sigs: accept only the VSS signing keys this JSON file lists, each with an optional name and quota (reloaded on SIGHUP)",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
  quotaMaxKeys: {
    flag: "--quota-max-keys <n>",
    description: "most keys a store (a VSS user: all its store ids together) may hold, for identities without a quota of their own (0 = no limit)",
    defaultValue: DEFAULT_QUOTA_SETTINGS.maxKeys,
    parse: parseNonNegativeInteger,
  } satisfies Setting<number>,
  quotaMaxBytes: {
    flag: "--quota-max-bytes <n>",
    description: "most value bytes a store (a VSS user: all its store ids together) may hold, for identities without a quota of their own (0 = no limit)",
    defaultValue: DEFAULT_QUOTA_SETTINGS.maxBytes,
    parse: parseNonNegativeInteger,
  } satisfies Setting<number>,
  quotaMaxStores: {
    flag: "--quota-max-stores <n>",
    description: "most VSS store ids holding keys a user may have, for identities without a quota of their own (0 = no limit)",
    defaultValue: DEFAULT_QUOTA_SETTINGS.maxStores,
    parse: parseNonNegativeInteger,
  } satisfies Setting<number>,
  insecureNoAuth: {
    flag: "--insecure-no-auth",
    description: "allow --auth none on a non-loopback address (anyone who reaches the port can do anything)",
    defaultValue: false,
    parse: parseBoolean,
  } satisfies Setting<boolean>,
  maxConnectionAgeMs: {
    flag: "--max-connection-age-ms <ms>",
    description: "close client connections after this long (with a grace period), so load balancers can rebalance; 0 = never",
    defaultValue: 0,
    parse: parseNonNegativeInteger,
  } satisfies Setting<number>,
  watchRetention: {
    flag: "--watch-retention <kept>",
    description: "what the change log keeps for Watch and followers: a duration (1h), a count per store (100000), or both (1h,100000)",
    defaultValue: `${DEFAULT_WATCH_RETENTION_MS / 3_600_000}h,${DEFAULT_WATCH_RETENTION_CHANGES}`,
    parse: (raw: unknown, origin: string): string => {
      const text = parseString(raw, origin);
      try {
        parseRetention(text);
      } catch (error) {
        throw new SettingsError(`${origin}: ${(error as Error).message}`);
      }
      return text;
    },
  } satisfies Setting<string>,
  watchProgressIntervalMs: {
    flag: "--watch-progress-interval-ms <ms>",
    description: "an idle watch is sent a progress message this often",
    defaultValue: DEFAULT_WATCH_PROGRESS_INTERVAL_MS,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  streamMaxStallMs: {
    flag: "--stream-max-stall-ms <ms>",
    description: "a server stream (Watch, Resync, Snapshot) whose peer takes no message for this long is ended (RESOURCE_EXHAUSTED; a watch says where to resume)",
    defaultValue: DEFAULT_STREAM_MAX_STALL_MS,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  metricsPerStore: {
    flag: "--metrics-per-store",
    description: "also export keys, bytes and quota of each store with a quota (one label per tenant, at most 1000)",
    defaultValue: false,
    parse: parseBoolean,
  } satisfies Setting<boolean>,
  printConfig: {
    flag: "--print-config",
    description: "print the effective configuration (secrets redacted) as JSON and exit",
    defaultValue: false,
    parse: parseBoolean,
  } satisfies Setting<boolean>,
  httpCorsOrigin: {
    flag: "--http-cors-origin <origin...>",
    description: "browser origins allowed to call the HTTP listener's Connect/gRPC-Web routes (* for any; none by default)",
    defaultValue: [] as string[],
    parse: parseStringList,
  } satisfies Setting<string[]>,
  vssListen: {
    flag: "--vss-listen <host:port>",
    description:
      "HTTP listener: the VSS protocol (LDK Node's VssStore) at http://host:port/vss, and KVStoreService over Connect and gRPC-Web at /tierkv.v1.KVStoreService/* (HTTPS with --tls-cert; off by default)",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
  metricsListen: {
    flag: "--metrics-listen <host:port>",
    description: "serve Prometheus metrics at http://host:port/metrics (off by default)",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
  logLevel: {
    flag: "--log-level <level>",
    description: `log level: ${LOG_LEVELS.join(", ")}`,
    defaultValue: "info",
    parse: oneOf(LOG_LEVELS),
  } satisfies Setting<(typeof LOG_LEVELS)[number]>,
};

export type ServeSettings = SettingsOf<typeof SERVE_SETTINGS>;

/** The addresses that would serve open mode (`--auth none`) off loopback. */
function openNonLoopbackListens(settings: ServeSettings): string[] {
  if (!settings.auth.includes("none")) return [];
  const listens = [settings.listen, ...(settings.vssListen === undefined ? [] : [settings.vssListen])];
  return listens.filter((listen) => !isLoopbackAddress(listen));
}

/** `--primary` and the other tiers: a bad URI is a settings error naming its flag. */
function checkTierUri(flag: string, uri: string | undefined): void {
  if (uri === undefined) return;
  try {
    checkStoreUri(uri);
  } catch (error) {
    throw new SettingsError(`${flag}: ${(error as Error).message}`);
  }
}

/**
 * `--follow`: another tierkv (grpc:// or grpcs:// with a remote tier's parameters), and a primary
 * that is the follower's only tier: its changes arrive from the leader, so there is no backup to
 * mirror them to nor an ephemeral tier to route to.
 */
function checkFollow(settings: ServeSettings): void {
  if (settings.follow === undefined) return;
  if (parseStoreUri(settings.follow).kind !== "remote") {
    throw new SettingsError(`--follow "${redactStoreUri(settings.follow)}": expected grpc://HOST:PORT or grpcs://HOST:PORT?… (the leader)`);
  }
  checkTierUri("--follow", settings.follow);
  for (const [flag, value] of [["--backup", settings.backup], ["--ephemeral", settings.ephemeral]] as const) {
    if (value !== undefined) throw new SettingsError(`--follow and ${flag} exclude each other: a follower's copy lives in its primary (to keep another, follow the follower)`);
  }
}

/**
 * Every check of the settings that needs no file, store or port: `serve` runs it before opening
 * anything, and `--print-config` runs exactly this, so both refuse the same settings with the
 * same message. Files (identities, keys, certificates) are read, and stores opened, only by serve.
 */
export function checkServeSettings(settings: ServeSettings): void {
  for (const path of settings.ephemeralKey) {
    try {
      parseKeyPath(path);
    } catch (error) {
      throw new SettingsError(`--ephemeral-key ${path}: ${(error as StoreError).message}`);
    }
  }
  if (settings.backupPolicy === "degraded" && settings.backup === undefined) {
    throw new SettingsError("--backup-policy degraded needs --backup (a tier to degrade from)");
  }
  healthPolicyOf(settings);
  checkTierUri("--primary", settings.primary);
  checkTierUri("--backup", settings.backup);
  checkTierUri("--ephemeral", settings.ephemeral);
  checkFollow(settings);
  const { tlsCert, tlsKey, tlsClientCa } = settings;
  if ((tlsCert === undefined) !== (tlsKey === undefined)) throw new SettingsError("--tls-cert and --tls-key go together");
  if (tlsClientCa !== undefined && tlsCert === undefined) throw new SettingsError("--tls-client-ca needs --tls-cert and --tls-key");
  const [open] = openNonLoopbackListens(settings);
  if (open !== undefined && !settings.insecureNoAuth) {
    throw new SettingsError(
      `--auth none on ${open} would let anyone who reaches the port read and change every key; ` +
        "listen on 127.0.0.1, choose --auth tokens|jwt|mtls|sigs, or pass --insecure-no-auth",
    );
  }
  if (settings.auth.includes("mtls") && tlsClientCa === undefined) throw new SettingsError("--auth mtls needs --tls-client-ca");
  if (settings.auth.includes("tokens") && settings.tokensFile === undefined) throw new SettingsError("--auth tokens needs --tokens-file");
  if (settings.sigsAllowFile !== undefined && !settings.auth.includes("sigs")) throw new SettingsError("--sigs-allow-file needs --auth sigs");
  if (settings.auth.includes("jwt") && (settings.jwtJwksFile === undefined) === (settings.jwtPublicKeyFile === undefined)) {
    throw new SettingsError("--auth jwt needs exactly one of --jwt-jwks-file and --jwt-public-key-file");
  }
}

/** Store URIs may carry a password (postgres://user:pass@…): shown as ***. */
function redactUri(uri: string | undefined): string | undefined {
  return uri === undefined ? undefined : redactStoreUri(uri);
}

/**
 * The effective configuration as a config file (`--config` reads it back), store passwords shown
 * as `***`, without `print-config` itself (a file carrying it would never serve); and whether a
 * password was hidden, which the file then does not carry.
 */
export function printableConfig(settings: ServeSettings): { config: Record<string, unknown>; redacted: boolean } {
  const shown: ServeSettings = {
    ...settings,
    primary: redactStoreUri(settings.primary),
    backup: redactUri(settings.backup),
    ephemeral: redactUri(settings.ephemeral),
    follow: redactUri(settings.follow),
  };
  const config = toConfigFile(SERVE_SETTINGS, shown);
  delete config["print-config"];
  const redacted =
    shown.primary !== settings.primary || shown.backup !== settings.backup || shown.ephemeral !== settings.ephemeral || shown.follow !== settings.follow;
  return { config, redacted };
}

/** Runs the server until SIGINT/SIGTERM, then stops cleanly and exits 0; or prints the configuration. */
export async function serve(settings: ServeSettings): Promise<void> {
  checkServeSettings(settings);
  if (settings.printConfig) {
    const { config, redacted } = printableConfig(settings);
    process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    if (redacted) {
      process.stderr.write(
        "tierkv: note: store passwords are shown as ***, so this output does not carry them; " +
          "keep them out of the config with PGPASSWORD or a passfile (~/.pgpass)\n",
      );
    }
    return;
  }
  const logger = createLogger(settings.logLevel);
  const stopTracing = await startTracing(process.env);
  for (const listen of openNonLoopbackListens(settings)) {
    logger.warn({ listen }, "serving without authentication on a non-loopback address (--insecure-no-auth)");
  }
  const app = await startTierkv(settings, logger);
  const { server, vssServer, metricsServer, authenticator } = app;

  let stopping = false;
  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting without waiting");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, "shutting down: finishing in-flight calls");
    await app.shutdown();
    await stopTracing?.();
    logger.info("stopped");
    process.exit(0);
  };
  // Handlers go in before "listening" is announced: whoever waits for that line may signal at once.
  process.on("SIGINT", (signal) => void stop(signal));
  process.on("SIGTERM", (signal) => void stop(signal));
  // SIGHUP re-reads the identities file, JWT keys and VSS key allow-list, and the token files of chained tiers;
  // calls in flight are not disturbed.
  process.on("SIGHUP", () => {
    void authenticator.reload();
    app.reloadRemoteTokens();
  });
  logger.info(
    {
      address: server.address,
      tls: settings.tlsCert !== undefined,
      metrics: metricsServer?.address,
      vss: vssServer?.address,
      primary: redactUri(settings.primary),
      backup: redactUri(settings.backup),
      backupPolicy: settings.backupPolicy,
      ephemeral: redactUri(settings.ephemeral),
      ...(app.follower !== undefined && { follow: app.follower.status().leader }),
      auth: settings.auth,
    },
    "listening",
  );
}
