// The fs backend (an LDK data directory) against the shared conformance suite, against
// directories laid out exactly as LDK's FilesystemStore (v1) and FilesystemStoreV2 write them, and
// against kill -9 in the middle of writes.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { FsStore, OTHER_STORES_DIR } from "../../src/store/fs.js";
import type { KeyRef, KeyVersion, NamespaceRef } from "../../src/store/types.js";
import { openStore } from "../../src/app/open-store.js";
import { describeConformance } from "../conformance/kvstore-conformance.js";
import { openFsHarness } from "../support/fs-harness.js";
import { errorOf, walkPages } from "../support/store-assertions.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

// The layout keeps no versions and cannot write several files atomically (see src/store/fs.ts).
describeConformance("fs (LDK v2 layout)", () => openFsHarness(), {
  pageOrder: "newest-created-first",
  durable: true,
  versions: false,
  txn: "single-operation",
});
describeConformance("fs (LDK v1 layout)", () => openFsHarness({ layout: "v1" }), {
  pageOrder: "key-order",
  durable: true,
  versions: false,
  txn: "single-operation",
});

const ROOT: NamespaceRef = { primaryNamespace: "", secondaryNamespace: "" };
const MONITORS: NamespaceRef = { primaryNamespace: "monitors", secondaryNamespace: "" };
const at = (ns: NamespaceRef, key: string): KeyRef => ({ ...ns, key });
const text = (value: Uint8Array): string => Buffer.from(value).toString();
const bytes = (value: string): Uint8Array => Buffer.from(value);

/** Writes `content` at `path` (making its directory) with mtime `mtimeMs`, as a test fixture. */
function plant(path: string, content: string, mtimeMs?: number): void {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, content);
  if (mtimeMs !== undefined) utimesSync(path, mtimeMs / 1000, (mtimeMs + 0.5) / 1000);
}

async function allKeys(store: FsStore, allStores = false): Promise<string[]> {
  const out: KeyVersion[] = [];
  let pageToken = "";
  do {
    const page = await store.listAllKeys({ pageToken, limit: 3, allStores });
    out.push(...page.keys);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return out.map((k) => `${allStores ? `${k.storeId}:` : ""}${k.primaryNamespace}|${k.secondaryNamespace}|${k.key}@${k.version}/${k.revision}`);
}

const TXID = "a3f1c0ffee0000000000000000000000000000000000000000000000000000b2";
const T0 = 1_706_500_000_000;

describe("fs: an LDK FilesystemStoreV2 directory (LDK Node's default)", () => {
  afterEach(removeTempDirs);

  /** The layout LDK Node leaves behind, with a leftover temp file and unrelated entries. */
  function ldkV2Directory(): string {
    const root = join(tempDir(), "fs_store");
    plant(join(root, "[empty]", "[empty]", "manager"), "channel manager", T0);
    plant(join(root, "[empty]", "[empty]", "network_graph"), "graph", T0 + 1000);
    plant(join(root, "[empty]", "[empty]", "scorer"), "scorer", T0 + 2000);
    plant(join(root, "[empty]", "[empty]", "manager.7.tmp"), "half a channel man");
    mkdirSync(join(root, "[empty]", "[empty]", "archive"));
    plant(join(root, "monitors", "[empty]", `${TXID}_0`), "monitor 0", T0 + 3000);
    plant(join(root, "monitors", "[empty]", `${TXID}_1`), "monitor 1", T0 + 4000);
    plant(join(root, "monitors", "[empty]", `${TXID}_1.3.tmp`), "torn");
    plant(join(root, "monitor_updates", `${TXID}_1`, "5"), "update 5", T0 + 5000);
    plant(join(root, "monitor_updates", `${TXID}_1`, "6"), "update 6", T0 + 6000);
    plant(join(root, "bdk_wallet", "[empty]", "descriptor"), "wallet", T0 + 7000);
    for (const key of ["apple", "banana", "mango", "zebra"]) plant(join(root, "tie", "[empty]", key), key, T0);
    mkdirSync(join(root, "lost+found"));
    return root;
  }

  it("detects the v2 layout and reads every key where LDK wrote it", async () => {
    const store = await FsStore.open(ldkV2Directory());
    expect(store.layout).toBe("v2");
    expect(text(await store.read(at(ROOT, "manager")))).toBe("channel manager");
    expect(text(await store.read(at(MONITORS, `${TXID}_1`)))).toBe("monitor 1");
    const updates = { primaryNamespace: "monitor_updates", secondaryNamespace: `${TXID}_1` };
    expect(text(await store.read(at(updates, "6")))).toBe("update 6");
    expect(await store.readVersioned(at(ROOT, "scorer"))).toMatchObject({ version: 0n, revision: 0n });
    expect((await errorOf(store.read(at(ROOT, "manager.7.tmp")))).code).toBe("invalid-argument");
    expect((await errorOf(store.read(at(ROOT, "archive")))).code).toBe("not-found");
    await store.close();
  });

  it("lists without temp files or directories", async () => {
    const store = await FsStore.open(ldkV2Directory());
    expect(await store.list(ROOT)).toEqual(["manager", "network_graph", "scorer"]);
    expect(await store.list(MONITORS)).toEqual([`${TXID}_0`, `${TXID}_1`]);
    expect(await store.list({ primaryNamespace: "monitor_updates", secondaryNamespace: `${TXID}_1` })).toEqual(["5", "6"]);
    expect(await allKeys(store)).toEqual([
      "||manager@0/0",
      "||network_graph@0/0",
      "||scorer@0/0",
      "bdk_wallet||descriptor@0/0",
      `monitor_updates|${TXID}_1|5@0/0`,
      `monitor_updates|${TXID}_1|6@0/0`,
      `monitors||${TXID}_0@0/0`,
      `monitors||${TXID}_1@0/0`,
      "tie||apple@0/0",
      "tie||banana@0/0",
      "tie||mango@0/0",
      "tie||zebra@0/0",
    ]);
    await store.close();
  });

  it("pages in LDK's order (newest mtime first, ties by key descending) with LDK's position in the token", async () => {
    const store = await FsStore.open(ldkV2Directory());
    expect(await walkPages(store, ROOT, 1)).toEqual(["scorer", "network_graph", "manager"]);
    expect(await walkPages(store, { primaryNamespace: "tie", secondaryNamespace: "" }, 3)).toEqual(["zebra", "mango", "banana", "apple"]);
    const first = await store.listPage(ROOT, { pageSize: 1 });
    const body = JSON.parse(Buffer.from(first.nextPageToken, "base64url").toString()) as { p: string };
    expect(body.p).toBe(`${String(T0 + 2000).padStart(16, "0")}:scorer`);
    await store.close();
  });

  it("writes where LDK reads: new keys, overwrites that keep their mtime, removes", async () => {
    const root = ldkV2Directory();
    const store = await FsStore.open(root);
    await store.write(at(ROOT, "node_metrics"), bytes("metrics"));
    await store.write(at(ROOT, "manager"), bytes("channel manager v2"));
    await store.write(at({ primaryNamespace: "payments", secondaryNamespace: "" }, "ab12"), bytes("payment"));
    await store.remove(at(MONITORS, `${TXID}_0`));
    expect(readFileSync(join(root, "[empty]", "[empty]", "node_metrics"), "utf8")).toBe("metrics");
    expect(readFileSync(join(root, "[empty]", "[empty]", "manager"), "utf8")).toBe("channel manager v2");
    expect(Math.floor(statSync(join(root, "[empty]", "[empty]", "manager")).mtimeMs)).toBe(T0);
    expect(readFileSync(join(root, "payments", "[empty]", "ab12"), "utf8")).toBe("payment");
    expect(existsSync(join(root, "monitors", "[empty]", `${TXID}_0`))).toBe(false);
    // The manager kept its place (created first), the new key is the newest.
    expect(await walkPages(store, ROOT, 2)).toEqual(["node_metrics", "scorer", "network_graph", "manager"]);
    // The only temp file is the one LDK left behind.
    expect(readdirSync(join(root, "[empty]", "[empty]")).filter((name) => name.endsWith(".tmp"))).toEqual(["manager.7.tmp"]);
    await store.close();
  });

  it("gives keys created in one burst distinct milliseconds, so pages follow creation order", async () => {
    const root = join(tempDir(), "fs_store");
    const store = await FsStore.open(root);
    const keys = Array.from({ length: 50 }, (_, i) => `k${String(i).padStart(2, "0")}`);
    for (const key of keys) await store.write(at(MONITORS, key), bytes(key));
    const mtimes = keys.map((key) => Math.floor(statSync(join(root, "monitors", "[empty]", key)).mtimeMs));
    expect(new Set(mtimes).size).toBe(50);
    expect(await walkPages(store, MONITORS, 7)).toEqual([...keys].reverse());
    await store.close();
  });

  it("refuses v1 data when asked for v2, and a directory holding both", async () => {
    const root = join(tempDir(), "fs_store");
    plant(join(root, "manager"), "v1 manager");
    expect((await errorOf(FsStore.open(root, { layout: "v2" }))).code).toBe("failed-precondition");
    plant(join(root, "[empty]", "[empty]", "manager"), "v2 manager");
    const error = await errorOf(FsStore.open(root));
    expect(error.code).toBe("failed-precondition");
    expect(error.message).toContain("v1 and v2");
  });
});

describe("fs: an LDK FilesystemStore (v1) directory", () => {
  afterEach(removeTempDirs);

  function ldkV1Directory(): string {
    const root = join(tempDir(), "ldk_data");
    plant(join(root, "manager"), "channel manager");
    plant(join(root, "network_graph"), "graph");
    plant(join(root, "manager.0.tmp"), "half a chan");
    plant(join(root, "monitors", `${TXID}_0`), "monitor 0");
    plant(join(root, "monitors", `${TXID}_0.2.tmp`), "mon");
    plant(join(root, "monitor_updates", `${TXID}_0`, "1"), "update 1");
    plant(join(root, "logs", "ldk_node_latest.log"), "a log line");
    mkdirSync(join(root, "logs", "old.d"), { recursive: true });
    return root;
  }

  it("detects the v1 layout, reads and lists it without temp files or unrelated entries", async () => {
    const root = ldkV1Directory();
    const store = await FsStore.open(root);
    expect(store.layout).toBe("v1");
    expect(text(await store.read(at(ROOT, "manager")))).toBe("channel manager");
    expect(text(await store.read(at(MONITORS, `${TXID}_0`)))).toBe("monitor 0");
    expect(await store.list(ROOT)).toEqual(["manager", "network_graph"]);
    expect(await store.list(MONITORS)).toEqual([`${TXID}_0`]);
    expect(await store.list({ primaryNamespace: "logs", secondaryNamespace: "" })).toEqual([]);
    expect(await walkPages(store, ROOT, 1)).toEqual(["manager", "network_graph"]);
    expect(await allKeys(store)).toEqual([
      "||manager@0/0",
      "||network_graph@0/0",
      `monitor_updates|${TXID}_0|1@0/0`,
      `monitors||${TXID}_0@0/0`,
    ]);
    await store.write(at(ROOT, "scorer"), bytes("scorer"));
    await store.write(at({ primaryNamespace: "monitor_updates", secondaryNamespace: `${TXID}_0` }, "2"), bytes("update 2"));
    expect(readFileSync(join(root, "scorer"), "utf8")).toBe("scorer");
    expect(readFileSync(join(root, "monitor_updates", `${TXID}_0`, "2"), "utf8")).toBe("update 2");
    await store.close();
  });

  it("cannot hold a key and a namespace of one name (as LDK v1), and says so", async () => {
    const store = await FsStore.open(ldkV1Directory());
    const error = await errorOf(store.write(at(ROOT, "monitors"), bytes("x")));
    expect(error.code).toBe("failed-precondition");
    expect(error.message).not.toContain("/tmp");
    expect((await errorOf(store.read(at(ROOT, "monitors")))).code).toBe("not-found");
    expect(await store.remove(at(ROOT, "monitors"))).toBe("applied");
    await store.close();
  });
});

describe("fs: what the layout cannot hold", () => {
  afterEach(removeTempDirs);

  it("applies every versioned mutation and reports version and revision 0 (unknown)", async () => {
    const store = await FsStore.open(join(tempDir(), "d"));
    expect(await store.write(at(MONITORS, "k"), bytes("new"), { version: 20n })).toBe("applied");
    expect(await store.write(at(MONITORS, "k"), bytes("older"), { version: 10n })).toBe("applied");
    expect(await store.readVersioned(at(MONITORS, "k"))).toMatchObject({ version: 0n, revision: 0n });
    expect(text(await store.read(at(MONITORS, "k")))).toBe("older");
    expect(await store.remove(at(MONITORS, "k"), { version: 5n })).toBe("applied");
    expect(await store.highestVersion()).toBe(0n);
    await store.close();
  });

  it("refuses a txn of several operations, and applies one of a single operation under its checks", async () => {
    const store = await FsStore.open(join(tempDir(), "d"));
    const a = at(MONITORS, "a");
    const b = at(MONITORS, "b");
    const refused = await errorOf(
      store.txn({ checks: [], operations: [{ ...a, kind: "write", value: bytes("1") }, { ...b, kind: "remove" }] }),
    );
    expect(refused.code).toBe("failed-precondition");
    expect(refused.message).toBe("the fs backend cannot apply atomic transactions; use sqlite or postgres");
    expect(await store.list(MONITORS)).toEqual([]);

    const create = { checks: [{ ...a, expect: "absent" as const }], operations: [{ ...a, kind: "write" as const, value: bytes("1") }] };
    expect(await store.txn(create)).toEqual({ succeeded: true, outcomes: ["applied"], revisions: [0n], versions: [0n] });
    expect(await store.txn(create)).toEqual({ succeeded: false, failedCheck: 0 });
    // A revision is never known, so a check on one never holds.
    expect(await store.txn({ checks: [{ ...a, expect: 1n }], operations: [] })).toEqual({ succeeded: false, failedCheck: 0 });
    expect(await store.txn({ checks: [{ ...a, expect: "present" }, { ...b, expect: "absent" }], operations: [{ ...a, kind: "remove" }] })).toEqual({
      succeeded: true,
      outcomes: ["applied"],
      revisions: [0n],
      versions: [0n],
    });
    expect(await store.list(MONITORS)).toEqual([]);
    await store.close();
  });

  it("keeps other stores in a subtree LDK skips, and lists them by store id", async () => {
    const root = join(tempDir(), "fs_store");
    const store = await FsStore.open(root);
    const exotic = "é".repeat(200);
    await store.write(at(ROOT, "manager"), bytes("default"));
    await store.write({ ...at(ROOT, "manager"), storeId: "alice" }, bytes("alice"));
    await store.write({ ...at(MONITORS, "m"), storeId: "02ab:wallet 1" }, bytes("02ab"));
    await store.write({ ...at(MONITORS, "m"), storeId: exotic }, bytes("exotic"));
    expect(readFileSync(join(root, OTHER_STORES_DIR, "alice", "[empty]", "[empty]", "manager"), "utf8")).toBe("alice");
    expect(readFileSync(join(root, OTHER_STORES_DIR, "02ab.3awallet.201", "monitors", "[empty]", "m"), "utf8")).toBe("02ab");
    expect(readdirSync(root).sort()).toEqual([OTHER_STORES_DIR, "[empty]"]);
    expect(await store.list(ROOT)).toEqual(["manager"]);
    expect(await allKeys(store)).toEqual(["||manager@0/0"]);
    expect(text(await store.read({ ...at(MONITORS, "m"), storeId: exotic }))).toBe("exotic");
    await store.close();
    const reopened = await FsStore.open(root);
    expect(await allKeys(reopened, true)).toEqual([
      "02ab:wallet 1:monitors||m@0/0",
      "alice:||manager@0/0",
      "default:||manager@0/0",
      `${exotic}:monitors||m@0/0`,
    ]);
    await reopened.close();
  });

  it("is opened by the fs: store URI", async () => {
    const root = join(tempDir(), "fs_store");
    const store = await openStore(`fs:${root}`);
    await store.write(at(ROOT, "manager"), bytes("m"));
    expect(readFileSync(join(root, "[empty]", "[empty]", "manager"), "utf8")).toBe("m");
    await store.close();
    expect((await errorOf(openStore("fs:"))).code).toBe("invalid-argument");
  });
});

describe("fs: kill -9 while overwriting", () => {
  afterEach(removeTempDirs);

  const CHILD = fileURLToPath(new URL("../support/fs-overwrite-child.mjs", import.meta.url));
  const CRASH_KEY = at(MONITORS, "crash_key");

  /** Checks a value of the child's self-checking format; returns its sequence number. */
  function checkValue(value: Uint8Array): number {
    const buffer = Buffer.from(value);
    expect(buffer.subarray(0, 8).toString("latin1")).toBe("TKVCRASH");
    const n = Number(buffer.readBigUInt64BE(8));
    const length = buffer.readUInt32BE(16);
    const fill = buffer.readUInt32BE(20);
    const body = buffer.subarray(56);
    expect(body.length).toBe(length);
    expect(fill).toBe((n % 251) + 1);
    expect(body.every((byte) => byte === fill)).toBe(true);
    expect(createHash("sha256").update(body).digest().equals(buffer.subarray(24, 56))).toBe(true);
    return n;
  }

  /** Runs the child from sequence `start`, kills it with SIGKILL at a random moment; the last acked n. */
  async function runAndKill(dir: string, start: number): Promise<number> {
    const child = spawn(process.execPath, [CHILD, dir, String(start)], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? code)));
    let acked = start;
    let firstAck!: () => void;
    const started = new Promise<void>((resolve) => (firstAck = resolve));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const match = /^acked (\d+)$/.exec(line);
      if (match) {
        acked = Number(match[1]);
        firstAck();
      }
    });
    await Promise.race([started, exited.then((how) => Promise.reject(new Error(`child exited (${how}): ${stderr}`)))]);
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 250));
    child.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");
    return acked;
  }

  it("leaves one complete value (the last acknowledged or the one in flight) after each of 8 kills", async () => {
    const dir = join(tempDir(), "fs_store");
    let next = 0;
    for (let round = 0; round < 8; round++) {
      const acked = await runAndKill(dir, next);
      const store = await FsStore.open(dir);
      const n = checkValue(await store.read(CRASH_KEY));
      // Never older than what was acknowledged; at most the one write in flight beyond it.
      expect(n).toBeGreaterThanOrEqual(acked);
      expect(n).toBeLessThanOrEqual(acked + 1);
      expect(await store.list(MONITORS)).toEqual(["crash_key"]);
      expect((await store.listPage(MONITORS)).keys).toEqual(["crash_key"]);
      expect((await store.listAllKeys()).keys.map((k) => k.key)).toEqual(["crash_key"]);
      await store.close();
      next = n;
    }
    // Kills during a write leave its temp file behind (nothing cleans them up, as in LDK); the
    // listings above never showed them.
    expect(readdirSync(join(dir, "monitors", "[empty]")).filter((name) => name.endsWith(".tmp")).length).toBeGreaterThan(0);
  }, 120_000);
});
