//! Whether the last stop was clean (contract §4.13): a marker file beside a `sqlite:` primary,
//! written by a clean shutdown and removed at start, so a crash leaves none behind.

import { closeSync, existsSync, fsyncSync, openSync, rmSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { LastStop } from "./tier-store.js";

/** Makes a file's creation or removal durable: fsync its directory. */
function syncDirectory(path: string): void {
  const fd = openSync(dirname(path), "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The marker of the primary `uri` names, read and removed now (before the primary opens): a
 * primary whose file does not exist yet starts clean. Undefined for primaries without a file
 * of their own to put it beside (memory:, postgres://, fs:, grpc(s)://): they are not healed.
 */
export function takeStopMarker(uri: string): LastStop | undefined {
  if (!uri.startsWith("sqlite:")) return undefined;
  const database = resolve(uri.slice("sqlite:".length));
  const marker = `${database}.clean-stop`;
  const clean = !existsSync(database) || existsSync(marker);
  if (existsSync(marker)) {
    rmSync(marker, { force: true });
    syncDirectory(marker);
  }
  return {
    clean,
    async markClean() {
      const fd = openSync(marker, "w");
      try {
        writeFileSync(fd, `${JSON.stringify({ stoppedAt: new Date().toISOString() })}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      syncDirectory(marker);
    },
  };
}
