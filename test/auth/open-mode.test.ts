// Open mode (`--auth none`, the default) is for loopback only: on any other address `tierkv serve`
// refuses to start (exit 2) unless --insecure-no-auth says so, and then warns. `--print-config`
// shows the effective settings with store passwords redacted and exits without serving.
import { afterEach, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import { runCliBounded } from "../support/auth.js";
import { spawnServer, type ServerProcess } from "../support/process.js";

const running: Array<ServerProcess | TierkvClient> = [];
afterEach(async () => {
  for (const thing of running.splice(0).reverse()) {
    if ("kill" in thing) await thing.kill();
    else await thing.close();
  }
});

const logEntries = (server: ServerProcess): Array<Record<string, unknown>> => server.logs.map((line) => JSON.parse(line) as Record<string, unknown>);

for (const listen of ["0.0.0.0:0", "[::]:0"]) {
  it(`refuses --auth none on ${listen} with exit code 2 and names --insecure-no-auth`, async () => {
    const result = await runCliBounded(["serve", "--listen", listen, "--primary", "memory:"]);
    expect(result.timedOut).toBe(false);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^tierkv: --auth none on /);
    expect(result.stderr).toContain(listen);
    expect(result.stderr).toContain("--insecure-no-auth");
    expect(result.stdout.toString()).not.toMatch(/"listening"/);
  });
}

it("refuses it just the same when none is one of several modes", async () => {
  const result = await runCliBounded(["serve", "--listen", "0.0.0.0:0", "--auth", "none,tokens", "--tokens-file", "/nonexistent", "--primary", "memory:"]);
  expect(result.timedOut).toBe(false);
  expect(result.code).toBe(2);
  expect(result.stderr).toContain("--insecure-no-auth");
});

it("with --insecure-no-auth it starts on 0.0.0.0, warns, and serves everyone as the default store", async () => {
  // spawnServer passes --listen 127.0.0.1:0 first; the later flag wins.
  const server = await spawnServer(["--listen", "0.0.0.0:0", "--insecure-no-auth", "--primary", "memory:"]);
  running.push(server);
  expect(server.address).toMatch(/^0\.0\.0\.0:\d+$/);
  expect(server.listening["auth"]).toEqual(["none"]);
  const warnings = logEntries(server).filter((entry) => entry["level"] === 40);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]!["msg"]).toMatch(/without authentication on a non-loopback address \(--insecure-no-auth\)/);
  expect(warnings[0]!["listen"]).toBe("0.0.0.0:0");

  const port = server.address.split(":").at(-1)!;
  const client = new TierkvClient({ address: `127.0.0.1:${port}`, timeoutMs: 10_000 });
  running.push(client);
  const ref = { primaryNamespace: "", secondaryNamespace: "", key: "open" };
  await client.write(ref, Buffer.from("anyone"));
  expect((await client.listAllKeys()).keys.map((k) => [k.storeId, k.key])).toEqual([["default", "open"]]);
  expect(await server.kill()).toEqual({ code: 0, signal: null });
});

it("on loopback, open mode starts without a warning", async () => {
  const server = await spawnServer(["--primary", "memory:"]);
  running.push(server);
  expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/);
  expect(logEntries(server).filter((entry) => (entry["level"] as number) >= 40)).toEqual([]);
});

it("--print-config prints the effective settings as JSON, with the store password redacted, and exits 0", async () => {
  const result = await runCliBounded([
    "serve",
    "--print-config",
    "--listen", "0.0.0.0:7000",
    "--primary", "postgres://user:secret@host/db",
    "--backup", "postgresql://replica:hunter2@backup-host:5433/kv",
    "--auth", "tokens,jwt",
    "--tokens-file", "/etc/tierkv/identities.json",
    "--jwt-jwks-file", "/etc/tierkv/jwks.json",
    "--jwt-issuer", "https://issuer.example",
    "--max-value-bytes", "1024",
  ]);
  expect(result.timedOut).toBe(false);
  expect(result.stderr).toMatch(/^tierkv: note: store passwords are shown as \*\*\*.*PGPASSWORD.*\n$/);
  expect(result.code).toBe(0);
  const output = result.stdout.toString();
  expect(output).not.toContain("secret");
  expect(output).not.toContain("hunter2");
  const config = JSON.parse(output) as Record<string, unknown>;
  expect(config).toMatchObject({
    listen: "0.0.0.0:7000",
    primary: "postgres://user:***@host/db",
    backup: "postgresql://replica:***@backup-host:5433/kv",
    "backup-policy": "required",
    auth: ["tokens", "jwt"],
    "tokens-file": "/etc/tierkv/identities.json",
    "jwt-jwks-file": "/etc/tierkv/jwks.json",
    "jwt-issuer": "https://issuer.example",
    "jwt-store-claim": "sub",
    "insecure-no-auth": false,
    "max-value-bytes": 1024,
    "max-connection-age-ms": 0,
    "log-level": "info",
  });
  // nothing was opened: no store, no listener
  expect(output).not.toMatch(/"msg"/);
});
