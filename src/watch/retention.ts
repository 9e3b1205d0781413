//! How long the change log keeps changes (`--watch-retention`, contract §9), and the background
//! pruning that enforces it: bounded deletions at an interval, so pruning never holds a commit
//! (or the event loop) for long.

import { WATCH_PRUNE_INTERVAL_MS, WATCH_PRUNE_MAX_CHANGES } from "../limits.js";
import type { Logger } from "../log.js";
import type { ChangeLog, ChangeRetention } from "../store/types.js";

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses `1h`, `100000`, or both comma-separated (`1h,100000`): a duration (ms, s, m, h, d) keeps
 * changes that young, a bare count keeps that many per store; with both, whichever keeps fewer.
 */
export function parseRetention(text: string): ChangeRetention {
  let retention: { maxAgeMs?: number; maxCount?: number } = {};
  for (const part of text.split(",").map((item) => item.trim())) {
    const duration = /^(\d+)(ms|s|m|h|d)$/.exec(part);
    if (duration !== null && retention.maxAgeMs === undefined) {
      retention = { ...retention, maxAgeMs: Number(duration[1]) * UNITS_MS[duration[2]!]! };
    } else if (/^\d+$/.test(part) && retention.maxCount === undefined) {
      retention = { ...retention, maxCount: Number(part) };
    } else {
      throw new Error(`"${text}": expected a duration (e.g. 1h, 30m), a count of changes per store, or both separated by a comma`);
    }
  }
  if (!Number.isSafeInteger(retention.maxCount ?? 0) || !Number.isSafeInteger(retention.maxAgeMs ?? 0)) {
    throw new Error(`"${text}": too large`);
  }
  return retention;
}

/** Prunes `log` every interval until stopped; a failed pruning is logged and tried again next time. */
export function startPruning(log: ChangeLog, retention: ChangeRetention, logger: Logger, intervalMs = WATCH_PRUNE_INTERVAL_MS): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    log
      .pruneChanges(retention, WATCH_PRUNE_MAX_CHANGES)
      .then(
        (pruned) => {
          if (pruned > 0) logger.debug({ pruned }, "change log pruned");
        },
        (error: unknown) => logger.warn({ err: (error as Error).message }, "change log not pruned; trying again later"),
      )
      .finally(() => (running = false));
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
