//! `tierkv serve`: settings → stores → tiered store → server, and shutdown on SIGINT/SIGTERM.

import { LOG_LEVELS, createLogger, type Logger } from "../log.js";
import { startServer } from "../server/server.js";
import { StoreError } from "../store/errors.js";
import { openStore } from "../store/open.js";
import type { KVStore } from "../store/types.js";
import { parseKeyPath } from "../store/validate.js";
import { DEFAULT_EPHEMERAL_KEYS } from "../tier/ephemeral-keys.js";
import { NO_RETRY, type RetryPolicy } from "../tier/retry.js";
import { TierStore, type TierName } from "../tier/tier-store.js";
import {
  listOf,
  oneOf,
  parseNonNegativeInteger,
  parseOptionalString,
  parsePositiveInteger,
  parseString,
  parseStringList,
  SettingsError,
  type Setting,
  type SettingsOf,
} from "./settings.js";

const TIER_NAMES: readonly TierName[] = ["primary", "backup", "ephemeral"];

export const SERVE_SETTINGS = {
  listen: {
    flag: "--listen <host:port>",
    description: "address to serve gRPC on (port 0 picks a free port)",
    defaultValue: "127.0.0.1:50051",
    parse: parseString,
  } satisfies Setting<string>,
  primary: {
    flag: "--primary <uri>",
    description: "primary store URI: sqlite:PATH or memory:",
    defaultValue: "sqlite:./data/tierkv.db",
    parse: parseString,
  } satisfies Setting<string>,
  backup: {
    flag: "--backup <uri>",
    description: "backup store URI, written with the primary in the success path (none by default)",
    defaultValue: undefined,
    parse: parseOptionalString,
  } satisfies Setting<string | undefined>,
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
  retryInitialDelayMs: {
    flag: "--retry-initial-delay-ms <ms>",
    description: "bound of the first retry's random delay; doubles per retry",
    defaultValue: 20,
    parse: parseNonNegativeInteger,
  } satisfies Setting<number>,
  retryMaxDelayMs: {
    flag: "--retry-max-delay-ms <ms>",
    description: "largest retry delay bound",
    defaultValue: 1000,
    parse: parseNonNegativeInteger,
  } satisfies Setting<number>,
  retryMaxAttempts: {
    flag: "--retry-max-attempts <n>",
    description: "attempts per tier call, the first included (never past the caller's deadline)",
    defaultValue: 5,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  retryDisable: {
    flag: "--retry-disable <tier...>",
    description: "tiers whose calls are not retried (for backends that retry by themselves)",
    defaultValue: [] as TierName[],
    parse: listOf(TIER_NAMES),
  } satisfies Setting<TierName[]>,
  maxValueBytes: {
    flag: "--max-value-bytes <n>",
    description: "largest value a write accepts, in bytes",
    defaultValue: 64 * 1024 * 1024,
    parse: parsePositiveInteger,
  } satisfies Setting<number>,
  logLevel: {
    flag: "--log-level <level>",
    description: `log level: ${LOG_LEVELS.join(", ")}`,
    defaultValue: "info",
    parse: oneOf(LOG_LEVELS),
  } satisfies Setting<(typeof LOG_LEVELS)[number]>,
};

export type ServeSettings = SettingsOf<typeof SERVE_SETTINGS>;

/** How long in-flight calls get to finish after SIGINT/SIGTERM before they are cancelled. */
const SHUTDOWN_GRACE_MS = 30_000;

/** Opens every configured tier; on failure closes what was opened. */
export async function openTierStore(settings: ServeSettings, logger: Logger): Promise<TierStore> {
  for (const path of settings.ephemeralKey) {
    try {
      parseKeyPath(path);
    } catch (error) {
      throw new SettingsError(`--ephemeral-key ${path}: ${(error as StoreError).message}`);
    }
  }
  const opened: KVStore[] = [];
  const open = async (uri: string | undefined, durability: "durable" | "cache"): Promise<KVStore | undefined> => {
    if (uri === undefined) return undefined;
    const store = await openStore(uri, { durability });
    opened.push(store);
    return store;
  };
  try {
    const policy: RetryPolicy = {
      initialDelayMs: settings.retryInitialDelayMs,
      maxDelayMs: settings.retryMaxDelayMs,
      maxAttempts: settings.retryMaxAttempts,
    };
    const retry = Object.fromEntries(
      TIER_NAMES.map((tier) => [tier, settings.retryDisable.includes(tier) ? NO_RETRY : policy]),
    ) as Record<TierName, RetryPolicy>;
    return new TierStore({
      primary: (await open(settings.primary, "durable"))!,
      backup: await open(settings.backup, "durable"),
      ephemeral: await open(settings.ephemeral, "cache"),
      ephemeralKeys: settings.ephemeralKey,
      retry,
      logger,
    });
  } catch (error) {
    await Promise.all(opened.map((store) => store.close()));
    throw error;
  }
}

/** Runs the server until SIGINT/SIGTERM, then stops cleanly and exits 0. */
export async function serve(settings: ServeSettings): Promise<void> {
  const logger = createLogger(settings.logLevel);
  const store = await openTierStore(settings, logger);
  const server = await startServer({
    listen: settings.listen,
    store,
    maxValueBytes: settings.maxValueBytes,
    logger,
  }).catch(async (error: unknown) => {
    await store.close();
    throw error;
  });
  logger.info(
    { address: server.address, primary: settings.primary, backup: settings.backup, ephemeral: settings.ephemeral },
    "listening",
  );

  let stopping = false;
  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting without waiting");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, "shutting down: finishing in-flight calls");
    await server.shutdown(SHUTDOWN_GRACE_MS);
    await store.close();
    logger.info("stopped");
    process.exit(0);
  };
  process.on("SIGINT", (signal) => void stop(signal));
  process.on("SIGTERM", (signal) => void stop(signal));
}
