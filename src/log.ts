//! Structured JSON logs (pino) on stdout. Quiet by default: lifecycle events at `info`,
//! per-request detail only at `debug`.

import { pino, type Logger } from "pino";

export type { Logger };

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(level: LogLevel = "info"): Logger {
  return pino({ name: "tierkv", level, base: { pid: process.pid } });
}

/** A logger that discards everything: for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
