//! tierkv's own version, read once from its package.json.

import { readFileSync } from "node:fs";

/**
 * The `version` of the nearest package.json named tierkv above this module: the same lookup
 * works from src/ (tests) and from dist/src/ (the built CLI).
 */
function packageVersion(): string {
  for (let dir = new URL(".", import.meta.url); ; dir = new URL("..", dir)) {
    try {
      const manifest = JSON.parse(readFileSync(new URL("package.json", dir), "utf8")) as { name?: unknown; version?: unknown };
      if (manifest.name === "tierkv" && typeof manifest.version === "string") return manifest.version;
    } catch {
      // No package.json here (or not ours): look further up.
    }
    if (dir.pathname === "/") return "unknown";
  }
}

export const VERSION = packageVersion();
