// `tierkv migrate` through the real CLI: sqlite ↔ fs round trips, versions kept between sqlite
// stores and into a real `tierkv serve` over grpc://, a SIGKILLed migration resumed from its
// checkpoint, a non-empty target refused, --dry-run, and verification mismatches.

import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FsStore } from "../../src/store/fs.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { KVStore } from "../../src/store/types.js";
import { runCli, spawnServer, type CliResult, type ServerProcess } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { bytes, expectOneLineError, expectSameData, runCliIn, seed, snapshot, spawnCli, type Entry } from "./fixtures.js";

const servers: ServerProcess[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.kill("SIGKILL")));
  removeTempDirs();
});

/** Opens a store, runs `use`, closes it. */
async function withStore<T>(open: () => KVStore | Promise<KVStore>, use: (store: KVStore) => Promise<T>): Promise<T> {
  const store = await open();
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

const sqlite = (path: string) => () => new SqliteStore(path);
const fs = (dir: string) => () => FsStore.open(dir);

/** A seeded sqlite source in a fresh directory, with its snapshot. */
async function seededSource(perNamespace = 6): Promise<{ dir: string; path: string; data: Map<string, Entry>; keys: number }> {
  const dir = tempDir("tierkv-migrate-");
  const path = join(dir, "source.db");
  const { keys, data } = await withStore(sqlite(path), async (store) => ({ keys: await seed(store, perNamespace), data: await snapshot(store) }));
  return { dir, path, data, keys };
}

function expectMigrated(result: CliResult, versions: boolean): string {
  expect(result.code, result.stderr).toBe(0);
  const stdout = result.stdout.toString("utf8");
  expect(stdout.trimEnd().split("\n")).toHaveLength(1);
  expect(stdout).toMatch(/^migrate done: copied \d+ keys .*verified \d+ keys .* in 3 stores, 12 namespaces: counts and SHA-256 of /);
  expect(stdout).toContain(versions ? "values, versions and revisions match" : "values (versions not compared) match");
  return stdout;
}

describe("tierkv migrate", () => {
  it("round-trips sqlite → fs → sqlite keeping every store, namespace, key and byte (fs keeps no versions)", async () => {
    const { dir, path, data, keys } = await seededSource();
    expect(keys).toBe(3 * 4 * 6 + 1);
    const values = [...data.values()].map((entry) => entry.value.length);
    expect(values).toContain(0);
    expect(values).toContain(1024 * 1024);

    const fsDir = join(dir, "ldk-data");
    const checkpoint = join(dir, "cp");
    const there = await runCli(["migrate", "--from", `sqlite:${path}`, "--to", `fs:${fsDir}`, "--checkpoint", checkpoint]);
    expect(expectMigrated(there, false)).toContain(`copied ${keys} keys`);
    expect(existsSync(checkpoint)).toBe(false);
    // LDK's v2 layout: the default store's root namespace under [empty]/[empty].
    expect(readFileSync(join(fsDir, "[empty]", "[empty]", "manager")).equals(data.get("default://manager")!.value)).toBe(true);

    const back = join(dir, "back.db");
    expectMigrated(await runCli(["migrate", "--from", `fs:${fsDir}`, "--to", `sqlite:${back}`, "--checkpoint", checkpoint]), false);

    const result = await withStore(sqlite(back), snapshot);
    expectSameData(result, data, false);
    // What fs loses: versions and revisions come back as 0 (unknown).
    for (const entry of result.values()) expect([entry.version, entry.revision]).toEqual([0n, 0n]);
  });

  it("keeps versions and revisions from sqlite to sqlite; the default checkpoint lives in the cwd and is removed", async () => {
    const { dir, path, data } = await seededSource();
    const target = join(dir, "target.db");
    const result = await runCliIn(["migrate", "--from", `sqlite:${path}`, "--to", `sqlite:${target}`, "--progress-interval", "50"], dir);
    expectMigrated(result, true);
    expect(readdirSync(dir).filter((name) => name.endsWith(".migrate-checkpoint"))).toEqual([]);
    expectSameData(await withStore(sqlite(target), snapshot), data);
    const revisions = [...data.values()].map((entry) => entry.revision);
    expect(revisions).toContain(1n);
    expect(revisions).toContain(2n);
  });

  it("keeps versions into a real tierkv serve (sqlite primary) over grpc:// with a replicate token, and back", async () => {
    const { dir, path, data } = await seededSource();
    const tokens = join(dir, "identities.json");
    const add = async (roles: string[]): Promise<string> => {
      const added = await runCli(["token", "add", "--tokens-file", tokens, "--store", "default", "--role", ...roles]);
      expect(added.code, added.stderr).toBe(0);
      const file = join(dir, `token-${roles.join("-")}`);
      writeFileSync(file, `${added.stdout.toString("utf8").trimEnd().split("\n").at(-1)}\n`, { mode: 0o600 });
      return file;
    };
    const replicate = await add(["replicate"]);
    const writeOnly = await add(["write"]);
    const served = join(dir, "served.db");
    const server = await spawnServer(["--primary", `sqlite:${served}`, "--auth", "tokens", "--tokens-file", tokens]);
    servers.push(server);
    const checkpoint = join(dir, "cp");

    // Without the replicate role the server refuses to list every store: one line, exit 1, nothing written.
    const refused = await runCli(["migrate", "--from", `sqlite:${path}`, "--to", `grpc://${server.address}?token_file=${writeOnly}`, "--checkpoint", checkpoint]);
    expectOneLineError(refused, 1, /may not list every store/);

    const target = `grpc://${server.address}?token_file=${replicate}`;
    const result = await runCli(["migrate", "--from", `sqlite:${path}`, "--to", target, "--checkpoint", checkpoint]);
    expectMigrated(result, true);

    // And back out of the server, versions still intact.
    const back = join(dir, "back.db");
    expectMigrated(await runCli(["migrate", "--from", target, "--to", `sqlite:${back}`, "--checkpoint", checkpoint]), true);
    expectSameData(await withStore(sqlite(back), snapshot), data);

    await server.kill("SIGTERM");
    expectSameData(await withStore(sqlite(served), snapshot), data);
  });

  it("resumes a migration killed with SIGKILL after its first progress line, and the result verifies", async () => {
    const { dir, path, data, keys } = await seededSource(250);
    const target = join(dir, "target.db");
    const checkpoint = join(dir, "resume.cp");
    const args = ["migrate", "--from", `sqlite:${path}`, "--to", `sqlite:${target}`, "--checkpoint", checkpoint];
    // One write at a time and an early first progress line, so the kill lands well before the end.
    const first = spawnCli([...args, "--concurrency", "1", "--progress-interval", "20"], dir);
    // A line with keys copied: the first says 0/N before any write (and its checkpoint holds none).
    const line = await first.waitForStderr(/^migrate: [1-9]\d*\/\d+ keys/);
    first.child.kill("SIGKILL");
    expect(await first.exited).toEqual({ code: null, signal: "SIGKILL" });
    expect(first.stdout()).toBe("");
    const done = Number(/^migrate: (\d+)\//.exec(line)![1]);
    expect(done).toBeLessThan(keys);

    const saved = JSON.parse(readFileSync(checkpoint, "utf8")) as { copied: number; lastKey: { key: string } | null; phase: string };
    expect(saved.phase).toBe("copy");
    expect(saved.copied).toBeGreaterThan(0);
    expect(saved.copied).toBeLessThan(keys);
    const partial = await withStore(sqlite(target), snapshot);
    expect(partial.size).toBeGreaterThanOrEqual(saved.copied);
    expect(partial.size).toBeLessThan(keys);

    // The target is not empty now, but the matching checkpoint makes the rerun a resume.
    const resumed = await runCliIn(args, dir);
    expect(resumed.stderr).toMatch(/^migrate: resuming the migration \(copy\) from checkpoint .*resume\.cp, after store \w+, key .+: \d+ keys copied before$/m);
    const stdout = expectMigrated(resumed, true);
    const copiedNow = Number(/copied (\d+) keys/.exec(stdout)![1]);
    expect(copiedNow).toBeLessThanOrEqual(keys - saved.copied);
    expect(stdout).toContain("(resumed)");
    expect(existsSync(checkpoint)).toBe(false);
    expectSameData(await withStore(sqlite(target), snapshot), data);
  });

  it("refuses a non-empty target (exit 2, pointing at --overwrite) and leaves it unchanged; --overwrite makes it a copy", async () => {
    const { dir, path, data } = await seededSource(3);
    const target = join(dir, "target");
    const ref = (key: string) => ({ storeId: "bob", primaryNamespace: "monitors", secondaryNamespace: "", key });
    await withStore(fs(target), async (store) => {
      await store.write(ref("key_0"), bytes(10, 1));
      await store.write(ref("only_on_target"), bytes(20, 2));
    });
    const before = await withStore(fs(target), snapshot);
    const checkpoint = join(dir, "cp");

    const refused = await runCli(["migrate", "--from", `sqlite:${path}`, "--to", `fs:${target}`, "--checkpoint", checkpoint]);
    expectOneLineError(refused, 2, /the target fs:.* is not empty \(store bob, key monitors\/key_0\); pass --overwrite/);
    expect(existsSync(checkpoint)).toBe(false);
    expectSameData(await withStore(fs(target), snapshot), before);

    const overwritten = await runCli(["migrate", "--from", `sqlite:${path}`, "--to", `fs:${target}`, "--checkpoint", checkpoint, "--overwrite"]);
    expect(expectMigrated(overwritten, false)).toContain("removed 1 keys the source lacks");
    expectSameData(await withStore(fs(target), snapshot), data, false);
  });

  it("--dry-run prints the keys per store it would copy and changes nothing", async () => {
    const { dir, path } = await seededSource(2);
    const missing = join(dir, "not-yet");
    const checkpoint = join(dir, "cp");
    const dry = await runCli(["migrate", "--from", `sqlite:${path}`, "--to", `fs:${missing}`, "--checkpoint", checkpoint, "--dry-run"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout.toString("utf8")).toBe(
      [
        `dry run (nothing is changed): migrate sqlite:${path} → fs:${missing}`,
        "  store alice: would write 8 keys in 4 namespaces, remove 0",
        "  store bob: would write 8 keys in 4 namespaces, remove 0",
        "  store default: would write 9 keys in 4 namespaces, remove 0",
        "would copy 25 keys in 3 stores, then verify",
        "target: empty (does not exist yet)",
        "",
      ].join("\n"),
    );
    expect(existsSync(missing)).toBe(false);
    expect(existsSync(checkpoint)).toBe(false);

    // An existing, non-empty target: reported, untouched.
    const target = join(dir, "target.db");
    await withStore(sqlite(target), (store) => store.write({ primaryNamespace: "", secondaryNamespace: "", key: "x" }, bytes(3, 3)));
    const before = await withStore(sqlite(target), snapshot);
    const again = await runCli(["migrate", "--from", `sqlite:${path}`, "--to", `sqlite:${target}`, "--checkpoint", checkpoint, "--dry-run"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.toString("utf8")).toContain("target: not empty (store default, key x); refused without --overwrite");
    expectSameData(await withStore(sqlite(target), snapshot), before);
    expect(existsSync(checkpoint)).toBe(false);
  });

  it("--overwrite into a shared target removes only keys of the stores it copies; --prune-other-stores empties the others; --dry-run lists both", async () => {
    const dir = tempDir("tierkv-migrate-");
    // The case: a 4-key fs: directory (the default store only) into a server's shared database.
    const source = join(dir, "ldk");
    const key = (storeId: string, k: string) => ({ storeId, primaryNamespace: "monitors", secondaryNamespace: "", key: k });
    await withStore(fs(source), async (store) => {
      for (let i = 0; i < 4; i++) await store.write(key("default", `k${i}`), bytes(10, i));
    });
    const target = join(dir, "shared.db");
    await withStore(sqlite(target), async (store) => {
      await store.write(key("default", "k0"), bytes(5, 50), { version: 9n });
      await store.write(key("default", "stale"), bytes(5, 51), { version: 9n });
      for (let i = 0; i < 3; i++) await store.write(key("carol", `c${i}`), bytes(5, 60 + i), { version: 9n });
      for (let i = 0; i < 2; i++) await store.write(key("dave", `d${i}`), bytes(5, 70 + i), { version: 9n });
    });
    const others = async (): Promise<string[]> =>
      [...(await withStore(sqlite(target), snapshot)).keys()].filter((path) => !path.startsWith("default:")).sort();
    const tenants = await others();
    expect(tenants).toHaveLength(5);
    const args = ["migrate", "--from", `fs:${source}`, "--to", `sqlite:${target}`, "--checkpoint", join(dir, "cp"), "--overwrite"];

    const dry = await runCli([...args, "--dry-run"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout.toString("utf8")).toBe(
      [
        `dry run (nothing is changed): migrate fs:${source} → sqlite:${target}`,
        "  store default: would write 4 keys in 1 namespaces, remove 1",
        "  store carol (not in the source): 3 keys, left alone (--prune-other-stores would empty it)",
        "  store dave (not in the source): 2 keys, left alone (--prune-other-stores would empty it)",
        "would copy 4 keys in 1 store and remove 1 keys from the target, then verify",
        "target: not empty (store carol, key monitors/c0); --overwrite copies over it and removes the keys listed above",
        "",
      ].join("\n"),
    );

    const copied = await runCli(args);
    expect(copied.code, copied.stderr).toBe(0);
    expect(copied.stdout.toString("utf8")).toContain("removed 1 keys the source lacks;");
    expect(await others()).toEqual(tenants);
    const sourceData = await withStore(fs(source), snapshot);
    const defaults = new Map([...(await withStore(sqlite(target), snapshot))].filter(([path]) => path.startsWith("default:")));
    expectSameData(defaults, sourceData, false);
    // --verify-only, too, compares the source's stores only.
    const verified = await runCli(["migrate", "--from", `fs:${source}`, "--to", `sqlite:${target}`, "--verify-only"]);
    expect(verified.stdout.toString("utf8"), verified.stderr).toMatch(/^verified 4 keys .* in 1 store, 1 namespaces/);

    const pruneDry = await runCli([...args, "--prune-other-stores", "--dry-run"]);
    expect(pruneDry.code, pruneDry.stderr).toBe(0);
    expect(pruneDry.stdout.toString("utf8")).toContain(
      [
        "  store default: would write 4 keys in 1 namespaces, remove 0",
        "  store carol (not in the source): would remove all 3 keys (--prune-other-stores)",
        "  store dave (not in the source): would remove all 2 keys (--prune-other-stores)",
        "would copy 4 keys in 1 store and remove 5 keys from the target, then verify",
      ].join("\n"),
    );
    expect(await others()).toEqual(tenants);

    const pruned = await runCli([...args, "--prune-other-stores"]);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout.toString("utf8")).toContain("removed 5 keys the source lacks (5 of them in stores the source lacks);");
    expectSameData(await withStore(sqlite(target), snapshot), sourceData, false);

    expectOneLineError(await runCli(args.filter((arg) => arg !== "--overwrite").concat("--prune-other-stores")), 2, /--prune-other-stores needs --overwrite/);
  });

  it("--verify-only exits 1 naming each store and namespace that differs", async () => {
    const { dir, path } = await seededSource(3);
    const target = join(dir, "target.db");
    const checkpoint = join(dir, "cp");
    expectMigrated(await runCli(["migrate", "--from", `sqlite:${path}`, "--to", `sqlite:${target}`, "--checkpoint", checkpoint]), true);
    const verify = ["migrate", "--from", `sqlite:${path}`, "--to", `sqlite:${target}`, "--verify-only"];
    const clean = await runCli(verify);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stdout.toString("utf8")).toMatch(/^verified 37 keys .* in 3 stores, 12 namespaces: counts and SHA-256 of values, versions and revisions match\n$/);

    // Tamper with the target: one value changed (same version), one key gone, one revision changed.
    await withStore(sqlite(target), async (store) => {
      const value = { storeId: "alice", primaryNamespace: "monitors", secondaryNamespace: "archive", key: "key_1" };
      const stored = await store.readVersioned(value);
      await store.write(value, bytes(7, 99), { exact: true, version: stored.version, revision: stored.revision });
      await store.remove({ storeId: "bob", primaryNamespace: "", secondaryNamespace: "", key: "key_2" });
      const revision = { storeId: "default", primaryNamespace: "payments", secondaryNamespace: "inbound", key: "key_0" };
      const old = await store.readVersioned(revision);
      await store.write(revision, old.value, { exact: true, version: old.version, revision: old.revision + 5n });
    });
    const tampered = await runCli(verify);
    expectOneLineError(tampered, 1, /^tierkv: verification failed: /);
    expect(tampered.stderr).toContain("store alice, namespace monitors/archive: keys or values differ");
    expect(tampered.stderr).toContain("store bob, namespace (root): 3 keys on the source, 2 on the target");
    expect(tampered.stderr).toContain("store default, namespace payments/inbound: values match but versions or revisions differ");
    expect(tampered.stdout.toString("utf8")).toBe("");
  });

  it("answers usage errors with exit 2 and one line", async () => {
    const { dir, path } = await seededSource(1);
    expectOneLineError(await runCli(["migrate", "--from", `sqlite:${path}`]), 2, /migrate needs --to URI/);
    expectOneLineError(await runCli(["migrate", "--from", `sqlite:${path}`, "--to", `sqlite:${dir}/../${dir.split("/").at(-1)}/source.db`]), 2, /--from and --to name the same store/);
    expectOneLineError(await runCli(["migrate", "--from", `sqlite:${path}`, "--to", "memory:"]), 2, /memory: store exists only inside one process/);
    expectOneLineError(await runCli(["migrate", "--from", `sqlite:${join(dir, "nope.db")}`, "--to", `fs:${dir}/x`]), 2, /--from sqlite:.*nope\.db: no such file or directory/);
    expectOneLineError(await runCli(["migrate", "--from", "bogus:x", "--to", `fs:${dir}/x`]), 2, /--from: store URI "bogus:x" has an unknown scheme/);
    expectOneLineError(await runCli(["migrate", "--from", `sqlite:${path}`, "--to", `fs:${dir}/x`, "--concurrency", "0"]), 2, /--concurrency: expected a positive whole number/);
    const unknown = await runCli(["migrate", "--from", `sqlite:${path}`, "--to", `fs:${dir}/x`, "--bogus"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown option '--bogus'");
    expect(existsSync(join(dir, "x"))).toBe(false);
  });
});
