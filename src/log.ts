//! Structured JSON logs (pino) on stdout. Quiet by default: lifecycle events at `info`,
//! per-request detail only at `debug`.

import { pino, type Logger } from "pino";

export type { Logger };

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * A JSON logger on stdout. It writes through `process.stdout`, not pino's own fd writer: that
 * writer retries a failed write forever, so a reader of our stdout that goes away (EPIPE) would
 * hang the server at its next log line, shutdown included. Here such lines are dropped instead:
 * logging never stops the server.
 */
export function createLogger(level: LogLevel = "info"): Logger {
  process.stdout.on("error", () => {});
  return pino({ name: "tierkv", level, base: { pid: process.pid } }, process.stdout);
}

/** A logger that discards everything: for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
