// `tierkv snapshot save|status|restore` against a real `tierkv serve` with a SQLite primary: the
// saved file is the state at one instant while writers go on (each Txn writes one counter value
// into four keys; every group's four keys agree in the snapshot), status and restore round trips,
// the admin role required, and a primary that cannot give a consistent view refused.

import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { KVStore } from "../../src/store/types.js";
import { addTokenWithCli, writeTokenFile } from "../support/auth.js";
import { runCli, spawnServer, type CliResult, type ServerProcess } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { expectSameData, seed, snapshot, type Entry } from "../migrate/fixtures.js";

const servers: ServerProcess[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.kill("SIGKILL")));
  removeTempDirs();
});

const GROUPS = 4;
const KEYS_PER_GROUP = 4;
// A group's keys lie in namespaces far apart in key order (the seeded monitors and payments
// between them), so a snapshot read in pages reads them in different pages.
const COUNTER_NAMESPACES = ["a", "n", "q", "z"];
const counterKey = (group: number, i: number) => ({ primaryNamespace: COUNTER_NAMESPACES[i]!, secondaryNamespace: "", key: `counter${group}` });

async function withStore<T>(store: KVStore, use: (store: KVStore) => Promise<T>): Promise<T> {
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

function expectOk(result: CliResult): string {
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.toString("utf8");
}

/** `tierkv snapshot status FILE`'s lines after the first: one per store, with its digest. */
function storeLines(status: string): string[] {
  return status.trimEnd().split("\n").slice(1);
}

describe("tierkv snapshot", () => {
  it("saves one instant of a SQLite primary while Txn writers go on; status and restore round-trip it", async () => {
    const dir = tempDir("tierkv-snapshot-");
    const primary = join(dir, "primary.db");
    const seeded = await withStore(new SqliteStore(primary), async (store) => {
      await seed(store, 250);
      return snapshot(store);
    });
    const tokens = join(dir, "identities.json");
    const writer = await addTokenWithCli(tokens, "default", ["read", "write"]);
    const admin = writeTokenFile(dir, "admin-token", await addTokenWithCli(tokens, "default", ["admin"]));
    const server = await spawnServer(["--primary", `sqlite:${primary}`, "--auth", "tokens", "--tokens-file", tokens]);
    servers.push(server);
    const cli = (args: string[], token = admin) => runCli(["--server", server.address, "--token-file", token, ...args]);

    // Each group's keys always hold one counter value: every Txn writes the next one into all four.
    const client = new TierkvClient({ address: server.address, bearerToken: writer });
    let stop = false;
    const counters = new Array<number>(GROUPS).fill(0);
    const writers = counters.map(async (_, group) => {
      while (!stop) {
        const value = Buffer.from(String(counters[group]! + 1));
        const operations = Array.from({ length: KEYS_PER_GROUP }, (_, i) => ({ kind: "write" as const, ...counterKey(group, i), value }));
        const result = await client.txn({ checks: [], operations });
        expect(result.succeeded).toBe(true);
        counters[group]!++;
      }
    });
    while (counters.some((n) => n < 20)) await new Promise((resolve) => setTimeout(resolve, 10));

    const file = join(dir, "snap.db");
    const saved = await cli(["snapshot", "save", file]);
    const atSave = [...counters];
    // Writes go on after the save too, so the snapshot's instant lies strictly inside the run.
    while (counters.some((n, group) => n < atSave[group]! + 5)) await new Promise((resolve) => setTimeout(resolve, 10));
    stop = true;
    await Promise.all(writers);
    await client.close();

    const out = expectOk(saved);
    expect(saved.stderr).toBe(""); // progress only on a terminal
    const sha256 = /SHA-256 ([0-9a-f]{64})\n$/.exec(out)?.[1];
    expect(out).toMatch(new RegExp(`^snapshot saved to ${file}: ${seeded.size + GROUPS * KEYS_PER_GROUP} keys in 3 stores, .*; SHA-256 [0-9a-f]{64}\\n$`));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((name) => name.includes(".tmp"))).toEqual([]);

    const inFile = await withStore(new SqliteStore(file, { readOnly: true }), snapshot);
    const values = Array.from({ length: GROUPS }, (_, group) =>
      Array.from({ length: KEYS_PER_GROUP }, (_, i) => inFile.get(`default:${COUNTER_NAMESPACES[i]}//counter${group}`)!.value.toString()),
    );
    for (const [group, keys] of values.entries()) {
      expect(new Set(keys).size, `group ${group}: ${keys.join(",")}`).toBe(1);
      expect(Number(keys[0])).toBeGreaterThan(0);
      expect(Number(keys[0])).toBeLessThan(counters[group]!);
    }
    const rest = new Map<string, Entry>([...inFile].filter(([path]) => !path.includes("/counter")));
    expectSameData(rest, seeded);

    // status: the file's SHA-256 as saved; a digest per store, the same for any tierkv SQLite
    // file of the same data (so for the restored copy too).
    const status = expectOk(await runCli(["snapshot", "status", file]));
    expect(status.split("\n")[0]).toMatch(new RegExp(`^${file}: ${inFile.size} keys in 3 stores, .*; SHA-256 ${sha256}$`));
    expect(storeLines(status)).toHaveLength(3);
    expect(storeLines(status)[0]).toMatch(/^ {2}store alice: 1000 keys, .*; digest [0-9a-f]{64}$/);

    const restored = join(dir, "restored.db");
    const restore = ["snapshot", "restore", file, "--to", `sqlite:${restored}`, "--checkpoint", join(dir, "cp")];
    expect(expectOk(await runCli(restore))).toMatch(/^migrate done: copied \d+ keys .* values, versions and revisions match\n$/);
    expectSameData(await withStore(new SqliteStore(restored), snapshot), inFile);
    expect(storeLines(expectOk(await runCli(["snapshot", "status", restored])))).toEqual(storeLines(status));
    // The file itself is untouched by all this.
    expect(expectOk(await runCli(["snapshot", "status", file]))).toBe(status);

    // A non-empty target is refused unless --overwrite.
    const again = await runCli(restore);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/is not empty .*pass --overwrite/);
    expectOk(await runCli([...restore, "--overwrite"]));
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
