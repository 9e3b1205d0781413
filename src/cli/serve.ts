//! `tierkv serve`: settings → stores → server, and shutdown on SIGINT/SIGTERM.

import { LOG_LEVELS, createLogger } from "../log.js";
import { startServer } from "../server/server.js";
import { openStore } from "../store/open.js";
import { oneOf, parsePositiveInteger, parseString, type Setting, type SettingsOf } from "./settings.js";

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

/** Runs the server until SIGINT/SIGTERM, then stops cleanly and exits 0. */
export async function serve(settings: ServeSettings): Promise<void> {
  const logger = createLogger(settings.logLevel);
  const store = await openStore(settings.primary);
  const server = await startServer({
    listen: settings.listen,
    store,
    maxValueBytes: settings.maxValueBytes,
    logger,
  });
  logger.info({ address: server.address, primary: settings.primary }, "listening");

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
