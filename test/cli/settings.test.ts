// `tierkv serve` settings: resolveSettings' precedence (flag > env > config file > default) and its
// errors, then the same through the real binary (a config file that works, one that does not).
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SERVE_SETTINGS, type ServeSettings } from "../../src/cli/serve.js";
import { resolveSettings, SettingsError } from "../../src/cli/settings.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { CLI, runCli, spawnServer, type ServerProcess } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const DEFAULTS = {
  listen: "127.0.0.1:50051",
  primary: "sqlite:./data/tierkv.db",
  maxValueBytes: 64 * 1024 * 1024,
  logLevel: "info",
};

/** Writes `content` (JSON-encoded unless a string) to a config file in a fresh temp dir. */
function configFile(content: unknown): string {
  const path = join(tempDir(), "tierkv.json");
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

/**
 * The settings this file is about, resolved. Other settings (tiers, retries) exist too; they are
 * left out so these tests keep meaning the same thing as settings are added.
 */
function resolve(cli: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Pick<ServeSettings, keyof typeof DEFAULTS> {
  const resolved = resolveSettings(SERVE_SETTINGS, cli, env);
  const { listen, primary, maxValueBytes, logLevel } = resolved;
  return { listen, primary, maxValueBytes, logLevel };
}

/** The SettingsError `resolve` throws; fails the test when it returns instead. */
function settingsError(cli: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): SettingsError {
  try {
    resolve(cli, env);
  } catch (error) {
    expect(error).toBeInstanceOf(SettingsError);
    return error as SettingsError;
  }
  throw new Error(`expected a SettingsError for ${JSON.stringify({ cli, env })}`);
}

afterEach(removeTempDirs);

describe("resolveSettings(SERVE_SETTINGS)", () => {
  it("uses the defaults when nothing is set", () => {
    expect(resolve({})).toEqual(DEFAULTS);
    const everyDefault = Object.fromEntries(Object.entries(SERVE_SETTINGS).map(([name, s]) => [name, s.defaultValue]));
    expect(resolveSettings(SERVE_SETTINGS, {}, {})).toEqual(everyDefault);
  });

  it("uses TIERKV_* environment variables when no flag is given", () => {
    const env = {
      TIERKV_LISTEN: "0.0.0.0:7000",
      TIERKV_PRIMARY: "memory:",
      TIERKV_MAX_VALUE_BYTES: "2048",
      TIERKV_LOG_LEVEL: "debug",
    };
    expect(resolve({}, env)).toEqual({ listen: "0.0.0.0:7000", primary: "memory:", maxValueBytes: 2048, logLevel: "debug" });
  });

  it("lets a flag beat the environment, setting by setting", () => {
    const env = { TIERKV_LISTEN: "0.0.0.0:7000", TIERKV_MAX_VALUE_BYTES: "2048", TIERKV_LOG_LEVEL: "debug" };
    expect(resolve({ listen: "127.0.0.1:0", maxValueBytes: "10" }, env)).toEqual({
      ...DEFAULTS,
      listen: "127.0.0.1:0",
      maxValueBytes: 10,
      logLevel: "debug",
    });
  });

  it("uses the config file's values, keyed by flag name, from --config or TIERKV_CONFIG", () => {
    const config = { listen: "127.0.0.1:9000", primary: "sqlite:/tmp/x.db", "max-value-bytes": 4096, "log-level": "warn" };
    const expected = { listen: "127.0.0.1:9000", primary: "sqlite:/tmp/x.db", maxValueBytes: 4096, logLevel: "warn" };
    const path = configFile(config);
    expect(resolve({ config: path })).toEqual(expected);
    expect(resolve({}, { TIERKV_CONFIG: path })).toEqual(expected);
    // A number may also be written as a string of digits; unset keys keep their defaults.
    expect(resolve({ config: configFile({ "max-value-bytes": "512" }) })).toEqual({ ...DEFAULTS, maxValueBytes: 512 });
  });

  it("prefers --config over TIERKV_CONFIG", () => {
    const fromFlag = configFile({ primary: "memory:" });
    const fromEnv = configFile({ primary: "sqlite:/tmp/env.db" });
    expect(resolve({ config: fromFlag }, { TIERKV_CONFIG: fromEnv }).primary).toBe("memory:");
  });

  it("lets the environment beat the config file, and a flag beat both", () => {
    const path = configFile({ listen: "127.0.0.1:9000", "log-level": "warn", "max-value-bytes": 4096 });
    const env = { TIERKV_LOG_LEVEL: "error", TIERKV_MAX_VALUE_BYTES: "2048" };
    expect(resolve({ config: path, maxValueBytes: "99" }, env)).toEqual({
      ...DEFAULTS,
      listen: "127.0.0.1:9000",
      logLevel: "error",
      maxValueBytes: 99,
    });
  });

  it("rejects an unknown config key by name", () => {
    for (const key of ["prmary", "maxValueBytes", "config"]) {
      const error = settingsError({ config: configFile({ listen: "127.0.0.1:1", [key]: "x" }) });
      expect(error.message).toContain(`"${key}"`);
      expect(error.message).toContain("unknown");
    }
  });

  it("rejects a config file that is missing, not JSON or not an object, naming the file", () => {
    const missing = join(tempDir(), "missing.json");
    for (const path of [missing, configFile("{ listen: "), configFile([1, 2]), configFile("null")]) {
      expect(settingsError({ config: path }).message).toContain(path);
    }
  });

  it("rejects bad values, naming the flag, variable or config key they came from", () => {
    const cases: [Record<string, unknown>, NodeJS.ProcessEnv, string][] = [
      [{ maxValueBytes: "abc" }, {}, "--max-value-bytes"],
      [{ maxValueBytes: "-5" }, {}, "--max-value-bytes"],
      [{ maxValueBytes: "0" }, {}, "--max-value-bytes"],
      [{ maxValueBytes: "1.5" }, {}, "--max-value-bytes"],
      [{}, { TIERKV_MAX_VALUE_BYTES: "abc" }, "TIERKV_MAX_VALUE_BYTES"],
      [{ config: configFile({ "max-value-bytes": -5 }) }, {}, 'config key "max-value-bytes"'],
      [{ config: configFile({ "max-value-bytes": 1.5 }) }, {}, 'config key "max-value-bytes"'],
      [{ logLevel: "loud" }, {}, "--log-level"],
      [{}, { TIERKV_LOG_LEVEL: "loud" }, "TIERKV_LOG_LEVEL"],
      [{ config: configFile({ "log-level": "loud" }) }, {}, 'config key "log-level"'],
      [{ config: configFile({ listen: 5 }) }, {}, 'config key "listen"'],
      [{ primary: "" }, {}, "--primary"],
    ];
    for (const [cli, env, origin] of cases) {
      expect(settingsError(cli, env).message).toContain(origin);
    }
    // The message shows the bad value and, for a choice, what would have been accepted.
    expect(settingsError({ maxValueBytes: "abc" }).message).toContain("abc");
    const badLevel = settingsError({ logLevel: "loud" }).message;
    expect(badLevel).toContain("loud");
    expect(badLevel).toContain("debug");
  });
});

describe("tierkv serve --config (the real binary)", () => {
  const servers: ServerProcess[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.kill("SIGKILL")));
  });

  /** Runs `tierkv serve ...args`, which must exit by itself (a safety timeout kills it otherwise). */
  function serveExpectingExit(args: string[]): { code: number | null; stderr: string } {
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("TIERKV_")));
    const result = spawnSync(process.execPath, [CLI, "serve", "--listen", "127.0.0.1:0", ...args], {
      env,
      encoding: "utf8",
      timeout: 30_000,
    });
    return { code: result.status, stderr: result.stderr };
  }

  it("serves the sqlite file the config names, with the config's value limit", async () => {
    const dbPath = join(tempDir(), "data", "from-config.db");
    const config = configFile({ primary: `sqlite:${dbPath}`, "max-value-bytes": 16 });
    const server = await spawnServer(["--config", config]);
    servers.push(server);
    expect(existsSync(dbPath)).toBe(true);

    const kv = (args: string[], input: Uint8Array) => runCli(["--server", server.address, ...args], input);
    expect(await kv(["put", "ns/k"], Buffer.from("sixteen bytes!!!"))).toMatchObject({ code: 0, stderr: "" });
    const tooBig = await kv(["put", "ns/big"], Buffer.alloc(17));
    expect(tooBig.code).not.toBe(0);
    expect(tooBig.stderr).toContain("16");

    expect(await server.kill("SIGTERM")).toEqual({ code: 0, signal: null });
    const store = new SqliteStore(dbPath);
    try {
      const ns = { primaryNamespace: "ns", secondaryNamespace: "" };
      expect(Buffer.from(await store.read({ ...ns, key: "k" })).toString()).toBe("sixteen bytes!!!");
      expect(await store.list(ns)).toEqual(["k"]);
    } finally {
      await store.close();
    }
  });

  it("exits 2 naming an unknown config key, without starting", () => {
    const dbPath = join(tempDir(), "never.db");
    const result = serveExpectingExit(["--config", configFile({ primary: `sqlite:${dbPath}`, "max-value-byte": 16 })]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('"max-value-byte"');
    expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(result.stderr).not.toContain("    at ");
    expect(existsSync(dbPath)).toBe(false);
  });

  it("exits 2 naming a flag with a bad value", () => {
    const result = serveExpectingExit(["--primary", "memory:", "--max-value-bytes", "abc"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--max-value-bytes");
    expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
  });
});

describe("tierkv serve --print-config (the real binary)", () => {
  /** Runs `tierkv serve ...args` with no TIERKV_* variables; it must exit by itself. */
  function serveExpectingExit(args: string[]): { code: number | null; stdout: string; stderr: string } {
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("TIERKV_")));
    const result = spawnSync(process.execPath, [CLI, "serve", ...args], { env, encoding: "utf8", timeout: 30_000 });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  it("refuses what serve refuses, with serve's exit code 2 and message", () => {
    const refused: [string[], RegExp][] = [
      [["--listen", "0.0.0.0:0"], /--auth none on 0\.0\.0\.0:0/],
      [["--auth", "tokens"], /--auth tokens needs --tokens-file/],
      [["--sigs-allow-file", "keys.json"], /--sigs-allow-file needs --auth sigs/],
      [["--primary", "redis://cache:6379"], /--primary: store URI "redis:\/\/cache:6379" has an unknown scheme/],
      [["--primary", "postgres://u@db/kv?sslmode=require&ssl_mode=x"], /--primary: .*unknown parameter "ssl_mode"/],
      [["--ephemeral-key", "a/b/c/d"], /--ephemeral-key a\/b\/c\/d: .*4 parts/],
    ];
    for (const [args, pattern] of refused) {
      const printed = serveExpectingExit(["--print-config", ...args]);
      // serve itself, on a free port so that a bug here cannot start a server on 50051.
      const served = serveExpectingExit(["--listen", "127.0.0.1:0", ...args]);
      for (const result of [printed, served]) {
        expect(result.code, result.stderr).toBe(2);
        expect(result.stderr).toMatch(pattern);
        expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
      }
      expect(printed.stdout).toBe("");
      // The same check: the same message.
      expect(printed.stderr).toBe(served.stderr);
    }
  });

  it("prints a config file that --config reads back to the same output", () => {
    const args = [
      "--listen", "127.0.0.1:7001", "--primary", "sqlite:/var/lib/tierkv/kv.db", "--backup", "grpc://b.internal:50052?timeout_ms=5000",
      "--backup-policy", "degraded", "--ephemeral", "memory:", "--ephemeral-key", "ns/sub/graph", "scorer",
      "--retry-disable", "backup", "--max-value-bytes", "4096", "--auth", "tokens,jwt", "--tokens-file", "/etc/tierkv/identities.json",
      "--jwt-public-key-file", "/etc/tierkv/jwt.pem", "--insecure-no-auth", "--http-cors-origin", "https://a.example", "--log-level", "warn",
    ];
    const first = serveExpectingExit(["--print-config", ...args]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const config = JSON.parse(first.stdout) as Record<string, unknown>;
    expect(config).toMatchObject({ "backup-policy": "degraded", "ephemeral-key": ["ns/sub/graph", "scorer"], "max-value-bytes": 4096 });
    expect(config).not.toHaveProperty("print-config");
    expect(config).not.toHaveProperty("vss-listen"); // unset settings are left out
    const second = serveExpectingExit(["--config", configFile(first.stdout), "--print-config"]);
    expect(second.stderr).toBe("");
    expect(second.stdout).toBe(first.stdout);
  });

  it("hides store passwords, says that the output does not carry them, and reads its own output back", () => {
    const uri = "postgres://tierkv:p%40ss%2Fw%25rd@db.internal:5432/kv?sslmode=require";
    const first = serveExpectingExit(["--print-config", "--primary", uri, "--backup", "postgres://u:hunter2@replica/kv"]);
    expect(first.code).toBe(0);
    expect(first.stdout).not.toMatch(/p%40ss|hunter2/);
    expect(JSON.parse(first.stdout)).toMatchObject({
      primary: "postgres://tierkv:***@db.internal:5432/kv?sslmode=require",
      backup: "postgres://u:***@replica/kv",
    });
    expect(first.stderr).toMatch(/^tierkv: note: store passwords are shown as \*\*\*.*PGPASSWORD/);
    const second = serveExpectingExit(["--config", configFile(first.stdout), "--print-config"]);
    expect(second.code).toBe(0);
    expect(second.stdout).toBe(first.stdout);
  });

  it("never shows a password in the message of a URI it refuses", () => {
    for (const uri of [
      "postgres://u:raw@at/slash%@db/kv",
      "postgres://u@db/kv?password=hunter2",
      "postgres://u@db/kv?sslmode=require&sslpassword=hunter2",
      "postgres://u:p%zzhunter2@db/kv",
    ]) {
      const result = serveExpectingExit(["--print-config", "--primary", uri]);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).not.toMatch(/hunter2|raw@at|slash%/);
      expect(result.stderr).toContain("***");
    }
  });
});
