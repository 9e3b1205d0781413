//! The observation every call gets, whatever its surface: one debug line (`request`: surface,
//! method, the store touched, the path, outcome, code and error, ms), an error line with the cause
//! of an internal failure, then the metrics (`src/server/metrics.ts`).

import type { Logger } from "../log.js";
import type { CallObserver } from "./call.js";

/** Logs each call (internal failures at error, with their cause; every call at debug), then tells `next`. */
export function callObserver(logger: Logger, next?: CallObserver): CallObserver {
  return {
    started: next?.started?.bind(next),
    ended(rpc, error, seconds, outcome, subject) {
      const method = rpc.name;
      const surface = rpc.surface;
      if (error?.code === "internal" && outcome !== "cancelled") logger.error({ err: error.cause ?? error, surface, method, ...subject?.() }, "request failed");
      // One debug line per call: surface, method, store, key path and outcome; never values or
      // tokens. The error's text is `error`: a second `msg` key would hide it from JSON readers.
      else if (logger.isLevelEnabled("debug")) {
        const ms = Math.round(seconds * 1e4) / 10;
        logger.debug({ surface, method, ...subject?.(), outcome, ...(error !== undefined && { code: error.code, error: error.message }), ms }, "request");
      }
      next?.ended(rpc, error, seconds, outcome, subject);
    },
  };
}
