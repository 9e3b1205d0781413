//! Vitest global setup: compiles src/ to dist/ so tests can spawn the real `tierkv` binary.

import { execFileSync } from "node:child_process";

export default function build(): void {
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
}
