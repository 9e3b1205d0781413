//! A clock that disagrees: the environment that makes a child process run with its wall clock
//! shifted, through Debian's libfaketime (package `faketime`; `.ci/run` installs it). Preloaded
//! directly rather than through the `faketime` wrapper, which forks and would not pass our signals
//! on to the server it started.

import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** Multi-threaded programs (Node is one) need the MT build of the library. */
function library(): string {
  for (const lib of ["/usr/lib", "/usr/lib64"]) {
    if (!existsSync(lib)) continue;
    for (const arch of readdirSync(lib)) {
      const candidate = join(lib, arch, "faketime", "libfaketimeMT.so.1");
      if (existsSync(candidate)) return candidate;
    }
  }
  throw new Error("libfaketime is not installed: apt-get install faketime (Debian's package; .ci/run installs it)");
}

/** Environment for a child whose clock runs `offset` ahead (`+2s`, `+5m`, `-30s`: libfaketime's syntax). */
export function skewedClock(offset: string): NodeJS.ProcessEnv {
  return { LD_PRELOAD: library(), FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: "1" };
}
