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

const child = spawn(
  "npx",
  ["vitest", "run", "--no-file-parallelism", "test/reliability/crash.test.ts", "test/reliability/outages.test.ts"],
  {
    stdio: "inherit",
    env: { ...process.env, TIERKV_TORTURE_MINUTES: String(minutes), TIERKV_TORTURE_REPORT: reportFile },
  },
);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
const code = await new Promise((resolve) => child.on("exit", (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0))));

const reports = existsSync(reportFile)
  ? readFileSync(reportFile, "utf8").split("\n").filter((line) => line !== "").map((line) => JSON.parse(line))
  : [];
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
if (code !== 0) console.log("  FAILED: see the vitest output above for the violations");
process.exit(code);
