// The real `tierkv` binary: get/put/rm/ls against a spawned `tierkv serve` (sqlite primary), error
// output (one line, no stack trace), --help on every command, and a clean exit on SIGTERM.
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";
import { runCli, spawnServer, type CliResult, type ServerProcess } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

/** Asserts a failed run: non-zero exit and exactly one stderr line matching `pattern`, no stack trace. */
function expectOneLineError(result: CliResult, pattern: RegExp): void {
  expect(result.code, result.stderr).not.toBe(0);
  expect(result.code).not.toBeNull();
  expect(result.stderr.endsWith("\n")).toBe(true);
  expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(result.stderr).toMatch(pattern);
  expect(result.stderr).not.toContain("    at ");
}

/** Asserts a successful run with no complaint on stderr. */
function expectOk(result: CliResult): CliResult {
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  return result;
}

const servers: ServerProcess[] = [];

/** `tierkv serve` with a sqlite primary in a fresh temp dir; killed in teardown. */
async function startServer(): Promise<{ server: ServerProcess; dbPath: string }> {
  const dbPath = join(tempDir(), "kv.db");
  const server = await spawnServer(["--primary", `sqlite:${dbPath}`]);
  servers.push(server);
  return { server, dbPath };
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.kill("SIGKILL")));
  removeTempDirs();
});

describe("tierkv get/put/rm/ls", () => {
  let server: ServerProcess;
  /** Runs `tierkv --server <address> ...args`. */
  const kv = (args: string[], input?: Uint8Array): Promise<CliResult> => runCli(["--server", server.address, ...args], input);

  beforeEach(async () => {
    ({ server } = await startServer());
  });

  it("stores binary files and gets back identical bytes", async () => {
    const dir = tempDir();
    const values = {
      "bytes/all256": Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      "bytes/random1mib": randomBytes(1024 * 1024),
      "bytes/empty": Buffer.alloc(0),
    };
    for (const [path, value] of Object.entries(values)) {
      const file = join(dir, path.replace("/", "-"));
      writeFileSync(file, value);
      expectOk(await kv(["put", path, file]));
    }
    for (const [path, value] of Object.entries(values)) {
      const { stdout } = expectOk(await kv(["get", path]));
      expect(stdout.length).toBe(value.length);
      expect(stdout.equals(value)).toBe(true);
    }
  });

  it("stores stdin when the file is absent or -", async () => {
    const fromStdin = randomBytes(4096);
    expectOk(await kv(["put", "ns/sub/stdin"], fromStdin));
    expectOk(await kv(["put", "dash", "-"], Buffer.from("dash\n")));
    expect(expectOk(await kv(["get", "ns/sub/stdin"])).stdout.equals(fromStdin)).toBe(true);
    expect(expectOk(await kv(["get", "dash"])).stdout.toString()).toBe("dash\n");
  });

  it("lists a namespace newest first across several pages", async () => {
    for (const key of ["k1", "k2", "k3", "k4", "k5"]) expectOk(await kv(["put", `chan/mon/${key}`], Buffer.from(key)));
    // An overwrite keeps the key's place; other namespaces do not leak in.
    expectOk(await kv(["put", "chan/mon/k2"], Buffer.from("again")));
    expectOk(await kv(["put", "chan/other/x"], Buffer.from("x")));
    expectOk(await kv(["put", "chan/y"], Buffer.from("y")));

    const paged = expectOk(await kv(["ls", "chan/mon", "--page-size", "2"]));
    expect(paged.stdout.toString()).toBe("k5\nk4\nk3\nk2\nk1\n");
    expect(expectOk(await kv(["ls", "chan/mon"])).stdout.toString()).toBe("k5\nk4\nk3\nk2\nk1\n");
    expect(expectOk(await kv(["ls", "chan"])).stdout.toString()).toBe("y\n");
    expect(expectOk(await kv(["ls", "empty"])).stdout.toString()).toBe("");
  });

  it("lists the root namespace when no namespace is given", async () => {
    expectOk(await kv(["put", "manager"], Buffer.from("m")));
    expectOk(await kv(["put", "scorer"], Buffer.from("s")));
    expectOk(await kv(["put", "ns/not-root"], Buffer.from("n")));
    expect(expectOk(await kv(["ls"])).stdout.toString()).toBe("scorer\nmanager\n");
  });

  it("removes a key: a later get fails with one line saying there is no such key", async () => {
    expectOk(await kv(["put", "ns/sub/gone"], Buffer.from("v")));
    expectOk(await kv(["rm", "ns/sub/gone"]));
    const result = await kv(["get", "ns/sub/gone"]);
    expectOneLineError(result, /no such key/);
    expect(result.stderr).toContain("ns/sub/gone");
    expect(result.stdout).toHaveLength(0);
    // Removing an absent key succeeds, lazily or not.
    expectOk(await kv(["rm", "ns/sub/gone"]));
    expectOk(await kv(["rm", "--lazy", "ns/sub/never"]));
  });

  it("rejects an invalid path with a clear one-line message", async () => {
    const cases: [string[], RegExp][] = [
      [["get", "ns/a b"], /key contains " "/],
      [["get", "ns/sub/k/extra"], /4 parts/],
      [["get", `ns/${"k".repeat(121)}`], /121 characters.*120/],
      [["get", "ns/"], /key may not be empty/],
      [["put", "é/k"], /primary_namespace contains "é"/],
      [["rm", "a.b"], /key contains "\."/],
      [["ls", "a/b/c"], /3 parts/],
    ];
    for (const [args, pattern] of cases) expectOneLineError(await kv(args, Buffer.from("v")), pattern);
    // Nothing was written by the rejected put.
    expect(expectOk(await kv(["ls"])).stdout.toString()).toBe("");
  });
});

describe("tierkv against a server that is down", () => {
  it("exits non-zero with one line naming the server, for every command", async () => {
    const { server } = await startServer();
    const address = server.address;
    expect(await server.kill("SIGTERM")).toEqual({ code: 0, signal: null });
    for (const args of [["get", "k"], ["put", "k"], ["rm", "k"], ["ls"]]) {
      const result = await runCli(["--server", address, ...args], Buffer.from("v"));
      expectOneLineError(result, new RegExp(address.replace(/\./g, "\\.")));
    }
  });
});

describe("tierkv --help", () => {
  for (const command of ["serve", "get", "put", "rm", "ls"]) {
    it(`works for ${command}`, async () => {
      const result = expectOk(await runCli([command, "--help"]));
      expect(result.stdout.toString()).toContain(`Usage: tierkv ${command}`);
    });
  }

  it("lists every command at the top level", async () => {
    const help = expectOk(await runCli(["--help"])).stdout.toString();
    for (const command of ["serve", "get", "put", "rm", "ls"]) expect(help).toMatch(new RegExp(`^\\s+${command}\\b`, "m"));
  });
});

describe("tierkv serve and SIGTERM", () => {
  it("exits 0 and leaves every acknowledged write in the sqlite file", async () => {
    const { server, dbPath } = await startServer();
    const value = randomBytes(10_000);
    expectOk(await runCli(["--server", server.address, "put", "ns/sub/durable"], value));
    expect(await server.kill("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(server.logs.map((line) => (JSON.parse(line) as { msg: string }).msg)).toContain("stopped");

    const store = new SqliteStore(dbPath);
    try {
      const stored = await store.read({ primaryNamespace: "ns", secondaryNamespace: "sub", key: "durable" });
      expect(Buffer.from(stored).equals(value)).toBe(true);
    } finally {
      await store.close();
    }
  });
});

describe("tierkv serve when its stdout reader goes away", () => {
  it("keeps serving and still exits 0 on SIGTERM", async () => {
    const dir = tempDir();
    const server = await spawnServer(["--primary", `sqlite:${join(dir, "kv.db")}`]);
    // Whoever read our logs is gone: the next log lines meet a broken pipe (EPIPE).
    server.child.stdout!.destroy();
    const put = await runCli(["--server", server.address, "put", "k"], Buffer.from("still here"));
    expect(put.code).toBe(0);
    expect(await server.kill("SIGTERM")).toEqual({ code: 0, signal: null });
  });
});
