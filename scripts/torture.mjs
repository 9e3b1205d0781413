#!/usr/bin/env node
// The long mode of the crash and outage tests (issue 12): `npm run torture -- --minutes 60`.
//
// Runs test/reliability/crash.test.ts and test/reliability/outages.test.ts one file after the
// other with TIERKV_TORTURE_MINUTES set, so each test keeps killing and restarting for its share
// of the time (see TORTURE_SHARES in test/reliability/support/harness.ts) instead of a fixed
// count; then prints a summary of what every test survived and checked.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { minutes: { type: "string", default: "10" }, help: { type: "boolean", default: false } },
});
if (values.help) {
  console.log("usage: npm run torture -- [--minutes N]   (default 10; the tests share the time)");
  process.exit(0);
}
const minutes = Number(values.minutes);
if (!Number.isFinite(minutes) || minutes <= 0) {
  console.error(`--minutes: expected a positive number, got ${JSON.stringify(values.minutes)}`);
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), "tierkv-torture-"));
const reportFile = join(dir, "report.jsonl");
const started = Date.now();
console.log(`torture: ${minutes} minute(s) of crashes and backup outages; per-test summaries in ${reportFile}`);

const readReports = () =>
  existsSync(reportFile)
    ? readFileSync(reportFile, "utf8").split("\n").filter((line) => line !== "").map((line) => JSON.parse(line))
    : [];

// vitest, its workers and every `tierkv serve` the tests start share one process group of their
// own, so a stop reaches all of them, even servers whose test never gets to clean up.
const child = spawn(
  "npx",
  ["vitest", "run", "--no-file-parallelism", "test/reliability/crash.test.ts", "test/reliability/outages.test.ts"],
  {
    stdio: ["ignore", "inherit", "inherit"],
    detached: true,
    env: { ...process.env, TIERKV_TORTURE_MINUTES: String(minutes), TIERKV_TORTURE_REPORT: reportFile },
  },
);
/** Signals the whole group; false once no process is left in it. */
const signalGroup = (signal) => {
  try {
    process.kill(-child.pid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is empty
  }
};

/** How long the tests get to stop their servers after the first Ctrl-C. */
const STOP_GRACE_MS = 15_000;
let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    if (stopping) {
      console.log(`\ntorture: ${signal} again: killing every child now`);
      signalGroup("SIGKILL");
      return;
    }
    stopping = true;
    console.log(`\ntorture: ${signal}: stopping the tests and their servers (again to kill at once)`);
    signalGroup(signal);
    setTimeout(() => signalGroup("SIGKILL"), STOP_GRACE_MS).unref();
  });
}

const progress = setInterval(() => {
  const elapsed = (Date.now() - started) / 60_000;
  const done = readReports().map((report) => report.test);
  console.log(`torture: ${elapsed.toFixed(1)} of ${minutes} min; ${done.length} test(s) done${done.length > 0 ? `: ${done.join(", ")}` : ""}`);
}, 60_000);
progress.unref();

const code = await new Promise((resolve) => child.on("exit", (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0))));
clearInterval(progress);
// Whatever vitest left behind (a server of a test that was cut short) goes with it.
if (signalGroup("SIGKILL")) console.log("torture: killed processes the tests left running");

const reports = readReports();
const sum = (values) => values.reduce((total, value) => total + (Number(value) || 0), 0);
const killsOf = (report) => (report.kills ? sum(Object.values(report.kills)) : (report.bKills ?? 0));

console.log(`\ntorture summary (${Math.round((Date.now() - started) / 60_000)} min, vitest exit ${code})`);
for (const report of reports) {
  const parts = [
    `${String(report.seconds).padStart(5)} s`,
    `kills ${killsOf(report)}`,
    `acknowledged ${report.acknowledgedMutations} (checked ${report.acknowledgedChecked})`,
    `unacknowledged ${report.unacknowledgedMutations}`,
    `key checks ${report.keyStateChecks}`,
  ];
  if (report.maxRssMiB !== undefined) parts.push(`max RSS ${report.maxRssMiB} MiB`, `max fds ${report.maxFds}`, `hangs ${report.hangs}`, `late ${report.late}`);
  const ahead = report.backupAheadAfterReplay ?? report.afterReplay?.backupAhead;
  const revisions = report.revisionOnlyDifferencesAfterReplay ?? report.afterReplay?.revisionOnly;
  if (ahead !== undefined) parts.push(`backup ahead after replay ${ahead}`, `revision-only differences ${revisions}`);
  console.log(`  ${report.test}: ${parts.join(", ")}`);
}
console.log(
  `  total: ${sum(reports.map(killsOf))} kills survived, ${sum(reports.map((r) => r.acknowledgedChecked))} acknowledged mutations checked, ` +
    `${sum(reports.map((r) => r.keyStateChecks))} key states checked, ${reports.length} test(s) reported`,
);
if (stopping) console.log("  STOPPED before the end: the numbers cover the tests that finished");
else if (code !== 0) console.log("  FAILED: see the vitest output above for the violations");
process.exit(code);
