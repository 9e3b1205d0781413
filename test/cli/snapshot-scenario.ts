//! The snapshot scenario run against each primary that can give one consistent view: a real
//! `tierkv serve`, writers whose Txns keep groups of four keys equal while `tierkv snapshot save`
//! runs, and the saved file holding one instant (every group agrees); status and restore round trips.

import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { KVStore } from "../../src/store/types.js";
import { addTokenWithCli, writeTokenFile } from "../support/auth.js";
import { runCli, spawnServer, type CliResult } from "../support/process.js";
import { expectSameData, seed, snapshot, type Entry } from "../migrate/fixtures.js";

const GROUPS = 4;
const KEYS_PER_GROUP = 4;
// A group's keys lie in namespaces far apart in key order (the seeded monitors and payments
// between them), so a snapshot read in pages reads them in different pages.
const COUNTER_NAMESPACES = ["a", "n", "q", "z"];
const counterKey = (group: number, i: number) => ({ primaryNamespace: COUNTER_NAMESPACES[i]!, secondaryNamespace: "", key: `counter${group}` });

export async function withStore<T>(store: KVStore, use: (store: KVStore) => Promise<T>): Promise<T> {
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

export function expectOk(result: CliResult): string {
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.toString("utf8");
}

/** `tierkv snapshot status FILE`'s lines after the first: one per store, with its digest. */
function storeLines(status: string): string[] {
  return status.trimEnd().split("\n").slice(1);
}

/**
 * Seeds the primary (3 stores, 3001 keys), serves it with a real `tierkv serve`, saves a snapshot
 * while Txn writers go on, and checks the file holds one instant; then status and restore round trips.
 */
export async function snapshotWhileWriting(dir: string, primaryUri: string, openPrimary: () => Promise<KVStore>): Promise<void> {
  const seeded = await withStore(await openPrimary(), async (store) => {
    await seed(store, 250);
    return snapshot(store);
  });
  const tokens = join(dir, "identities.json");
  const writer = await addTokenWithCli(tokens, "default", ["read", "write"]);
  const admin = writeTokenFile(dir, "admin-token", await addTokenWithCli(tokens, "default", ["admin"]));
  const server = await spawnServer(["--primary", primaryUri, "--auth", "tokens", "--tokens-file", tokens]);
  let stop = false;
  try {
    const cli = (args: string[], token = admin) => runCli(["--server", server.address, "--token-file", token, ...args]);

    // Each group's keys always hold one counter value: every Txn writes the next one into all four.
    const client = new TierkvClient({ address: server.address, bearerToken: writer });
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
  } finally {
    stop = true;
    await server.kill("SIGKILL");
  }
}

