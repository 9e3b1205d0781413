// deploy/: the alert rules and scrape config pass promtool, the systemd unit passes
// systemd-analyze, and every metric the dashboard and the rules query exists in the /metrics of a
// real `tierkv serve` started with the unit's own arguments.
import { spawnSync } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import { addTokenWithCli } from "../support/auth.js";
import { CLI, spawnServer } from "../support/process.js";
import { errorOf } from "../support/store-assertions.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const DEPLOY = fileURLToPath(new URL("../../deploy/", import.meta.url));
const RULES = join(DEPLOY, "prometheus/tierkv-alerts.yml");
const SCRAPE = join(DEPLOY, "prometheus/scrape.yml");
const DASHBOARD = join(DEPLOY, "grafana/tierkv-dashboard.json");
const UNIT = join(DEPLOY, "systemd/tierkv.service");

afterAll(removeTempDirs);

/** Runs a tool that .ci/run installs; a missing one fails the test, naming the package. */
function tool(command: string, args: string[], debianPackage: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(command, args, { encoding: "utf8" });
  if (result.error !== undefined) throw new Error(`${command} is needed for this test (Debian package ${debianPackage}): ${result.error.message}`);
  return result;
}

/**
 * The PromQL of every rule: `expr:` on one line, or `expr: |` and the more indented lines under
 * it (the two forms the rules file uses).
 */
function ruleExpressions(yaml: string): string[] {
  const lines = yaml.split("\n");
  const exprs: string[] = [];
  lines.forEach((line, i) => {
    const match = /^(\s*)expr:\s*(.*)$/.exec(line);
    if (match === null) return;
    const [, indent, rest] = match;
    if (rest !== "|") return void exprs.push(rest!);
    const block: string[] = [];
    for (const next of lines.slice(i + 1)) {
      if (next.trim() !== "" && next.search(/\S/) <= indent!.length) break;
      block.push(next.trim());
    }
    exprs.push(block.join(" "));
  });
  return exprs;
}

/** The queries of the dashboard: every panel's targets, and the metric of each query variable. */
function dashboardExpressions(dashboard: unknown): string[] {
  const { panels, templating } = dashboard as {
    panels: Array<{ targets?: Array<{ expr: string }> }>;
    templating: { list: Array<{ type: string; query: string | { query: string } }> };
  };
  const targets = panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr));
  // Grafana's label_values(metric, label): only the first argument is a metric.
  const variables = templating.list
    .filter((v) => v.type === "query")
    .map((v) => (typeof v.query === "string" ? v.query : v.query.query).replace(/^label_values\(([^,]+),.*\)$/, "$1"));
  return [...targets, ...variables];
}

const PROMQL_KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"]);

/**
 * The metric names a PromQL expression reads: identifiers left once string literals, label
 * matchers, ranges and grouping clauses are gone, that are neither function calls nor keywords.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, "")
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  return [...bare.matchAll(/(?<![\w.:$])[a-zA-Z_:][\w:]*(?![\w:]|\s*\()/g)].map((m) => m[0]).filter((name) => !PROMQL_KEYWORDS.has(name));
}

it("metricNames reads metric names, not labels, functions, numbers or keywords", () => {
  expect(
    metricNames('sum by (le, grpc_method) (rate(grpc_server_handling_seconds_bucket{grpc_code!="OK", instance=~"$instance"}[$__rate_interval])) / on (instance) group_left tierkv_build_info > 1e3 or up == 0'),
  ).toEqual(["grpc_server_handling_seconds_bucket", "tierkv_build_info", "up"]);
});

describe("Prometheus", () => {
  it("promtool accepts the alert rules and the scrape config", () => {
    const rules = tool("promtool", ["check", "rules", RULES], "prometheus");
    expect(rules.status, rules.stderr).toBe(0);
    // Every rule was found, by promtool and by the expression reader the live test uses.
    expect(rules.stdout).toContain(`SUCCESS: ${ruleExpressions(readFileSync(RULES, "utf8")).length} rules found`);
    const config = tool("promtool", ["check", "config", SCRAPE], "prometheus");
    expect(config.status, config.stderr).toBe(0);
  });

  it("has the alerts an operator needs", () => {
    const names = [...readFileSync(RULES, "utf8").matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
    expect(names).toEqual(
      expect.arrayContaining(["TierkvInstanceDown", "TierkvBackupDebtGrowing", "TierkvTierDivergence", "TierkvHighErrorRatio", "TierkvQuotaNearlyFull"]),
    );
  });
});

describe("the systemd unit", () => {
  const unit = readFileSync(UNIT, "utf8");
  const directives = new Map<string, string[]>();
  for (const line of unit.split("\n")) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match !== null) directives.set(match[1]!, [...(directives.get(match[1]!) ?? []), match[2]!]);
  }
  const execStart = directives.get("ExecStart")![0]!.split(/\s+/);

  it("passes systemd-analyze verify, with a stand-in for the installed binary, and scores as well sandboxed", () => {
    // verify insists that ExecStart's binary exists: point it at a script that runs the build.
    const dir = tempDir();
    const binary = join(dir, "tierkv");
    writeFileSync(binary, `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    chmodSync(binary, 0o755);
    const copy = join(dir, "tierkv.service");
    writeFileSync(copy, unit.replace(/^ExecStart=\S+/m, `ExecStart=${binary}`));
    const verify = tool("systemd-analyze", ["verify", copy], "systemd");
    // verify exits 0 even for a directive it ignores; it says so on stderr.
    expect(verify.stderr).toBe("");
    expect(verify.status).toBe(0);
    // systemd's exposure scale runs from 0 (locked down) to 10; "--threshold=20" fails above 2.0.
    const security = tool("systemd-analyze", ["security", "--offline=true", "--threshold=20", copy], "systemd");
    expect(security.status, security.stdout).toBe(0);
    expect(security.stdout).toMatch(/Overall exposure level for tierkv\.service: [01]\.\d/);
  });

  it("runs as its own user, in a read-only system, with its data in the state directory", () => {
    expect(directives.get("DynamicUser")).toEqual(["yes"]);
    expect(directives.get("StateDirectory")).toEqual(["tierkv"]);
    for (const [name, value] of [["ProtectSystem", "strict"], ["NoNewPrivileges", "yes"], ["PrivateTmp", "yes"], ["ProtectHome", "yes"]] as const) {
      expect(directives.get(name), name).toEqual([value]);
    }
    expect(directives.get("RestrictAddressFamilies")).toEqual(["AF_INET AF_INET6 AF_UNIX"]);
    expect(directives.get("CapabilityBoundingSet")).toEqual([""]);
    expect(execStart.slice(0, 4)).toEqual(["/usr/bin/tierkv", "serve", "--primary", "sqlite:%S/tierkv/tierkv.db"]);
  });

  it("starts a real server with ExecStart's arguments, and every metric the dashboard and the rules query is exported", async () => {
    const dir = tempDir();
    const tokensFile = join(dir, "identities.json");
    const token = await addTokenWithCli(tokensFile, "alice", ["write"]);
    // The unit's own arguments, with %S (/var/lib) the temp dir.
    const unitArgs = execStart.slice(2).map((arg) => arg.replace("%S", dir));
    const server = await spawnServer([
      ...unitArgs,
      "--backup", "memory:",
      "--auth", "tokens", "--tokens-file", tokensFile,
      "--quota-max-keys", "100", "--quota-max-bytes", "100000",
      "--metrics-listen", "127.0.0.1:0", "--metrics-per-store",
    ]);
    let exposition: string;
    try {
      const client = new TierkvClient({ address: server.address, bearerToken: token });
      const ref = { primaryNamespace: "m", secondaryNamespace: "", key: "k" };
      await client.write(ref, Buffer.from("v"));
      expect((await errorOf(client.read({ ...ref, key: "absent" }))).code).toBe("not-found");
      await client.close();
      exposition = await (await fetch(`http://${server.listening["metrics"] as string}/metrics`)).text();
    } finally {
      await server.kill();
    }
    expect(readFileSync(join(dir, "tierkv", "tierkv.db")).byteLength).toBeGreaterThan(0);
    const exported = new Set(exposition.split("\n").filter((line) => line !== "" && !line.startsWith("#")).map((line) => /^[^{\s]+/.exec(line)![0]));

    const rules = ruleExpressions(readFileSync(RULES, "utf8"));
    const panels = dashboardExpressions(JSON.parse(readFileSync(DASHBOARD, "utf8")));
    const queried = new Set([...rules, ...panels].flatMap(metricNames));
    // `up` is Prometheus's own series per target (the instance-down alert), not tierkv's.
    expect(queried.has("up")).toBe(true);
    queried.delete("up");
    // A parse that found (almost) nothing would pass vacuously.
    expect(queried.size).toBeGreaterThan(15);
    expect([...queried].filter((name) => !exported.has(name))).toEqual([]);
  });
});
