// `tierkv snapshot save|status|restore` against a real `tierkv serve` with a SQLite primary: the
// saved file is the state at one instant while writers go on (each Txn writes one counter value
// into four keys; every group's four keys agree in the snapshot), status and restore round trips,
// the admin role required, and a primary that cannot give a consistent view refused.

import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";
import { addTokenWithCli, writeTokenFile } from "../support/auth.js";
import { runCli, spawnServer, type ServerProcess } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { snapshotWhileWriting } from "./snapshot-scenario.js";

const servers: ServerProcess[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.kill("SIGKILL")));
  removeTempDirs();
});

describe("tierkv snapshot", () => {
  it("saves one instant of a SQLite primary while Txn writers go on; status and restore round-trip it", async () => {
    const dir = tempDir("tierkv-snapshot-");
    const primary = join(dir, "primary.db");
    await snapshotWhileWriting(dir, `sqlite:${primary}`, async () => new SqliteStore(primary));
  }, 120_000);

  it("needs the admin role; refuses a primary without a consistent view, and a file that is not a snapshot", async () => {
    const dir = tempDir("tierkv-snapshot-");
    const tokens = join(dir, "identities.json");
    const writer = writeTokenFile(dir, "writer", await addTokenWithCli(tokens, "default", ["read", "write"]));
    const admin = writeTokenFile(dir, "admin", await addTokenWithCli(tokens, "default", ["admin"]));
    const server = await spawnServer(["--primary", `fs:${join(dir, "ldk")}`, "--auth", "tokens", "--tokens-file", tokens]);
    servers.push(server);
    const file = join(dir, "snap.db");
    const save = (token: string) => runCli(["--server", server.address, "--token-file", token, "snapshot", "save", file]);

    const denied = await save(writer);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/may not use AdminService \(needs the admin role\)/);
    const refused = await save(admin);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/primary cannot take a consistent snapshot/);
    expect(refused.stderr).not.toContain(dir);
    expect(readdirSync(dir).sort()).toEqual(["admin", "identities.json", "ldk", "writer"]);

    const bogus = await runCli(["snapshot", "status", tokens]);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toMatch(/is not a tierkv snapshot/);
    const notRestored = await runCli(["snapshot", "restore", tokens, "--to", `sqlite:${join(dir, "r.db")}`]);
    expect(notRestored.code).toBe(2);
    expect(notRestored.stderr).toMatch(/not a tierkv SQLite store/);
  }, 60_000);
});
