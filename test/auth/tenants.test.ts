// Tenancy over the wire (contract §6): a real `tierkv serve --auth tokens` process with tokens made
// by the real `tierkv token add`. Two tenants writing the same namespaces and keys never see or
// change each other's; bad or missing credentials, too-weak roles and foreign store ids are refused
// and change nothing; SIGHUP picks up new tokens and survives a broken file.
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/auth/identities-file.js";
import { TierkvAdminClient } from "../../src/client/admin-client.js";
import { TierkvClient } from "../../src/client/client.js";
import { StoreError } from "../../src/store/errors.js";
import type { KeyRef, KeyVersion, NamespaceRef } from "../../src/store/types.js";
import {
  addTokenWithCli,
  allKeys,
  expectCode,
  paths,
  RawKvClient,
  waitForLog,
} from "../support/auth.js";
import { spawnServer, type ServerProcess } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const NAMESPACES: NamespaceRef[] = [
  { primaryNamespace: "", secondaryNamespace: "" },
  { primaryNamespace: "monitors", secondaryNamespace: "" },
  { primaryNamespace: "monitors", secondaryNamespace: "archive" },
];
const SHARED_KEYS = ["k0", "k1", "k2", "k3", "k4"];
const ref = (ns: NamespaceRef, key: string): KeyRef => ({ ...ns, key });
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("utf8");
/** The keys a tenant wrote in `ns`: the shared ones and two of its own. */
const keysOf = (tenant: string): string[] => [...SHARED_KEYS, `only_${tenant}_0`, `only_${tenant}_1`];

let dir: string;
let tokensFile: string;
let server: ServerProcess;
const tokens: Record<"alice" | "bob" | "aliceReader" | "ops", string> = { alice: "", bob: "", aliceReader: "", ops: "" };
const clients: Array<TierkvClient | TierkvAdminClient | RawKvClient> = [];
let alice: TierkvClient;
let bob: TierkvClient;
let aliceReader: TierkvClient;
/** An admin identity: lists every store, to check that refused calls changed nothing. */
let ops: TierkvClient;

function client(token: string): TierkvClient {
  const made = new TierkvClient({ address: server.address, bearerToken: token, timeoutMs: 20_000 });
  clients.push(made);
  return made;
}

/** Every key of every store, with versions and revisions, as the admin sees it. */
const everything = (): Promise<KeyVersion[]> => allKeys(ops, { allStores: true }, 50);

beforeAll(async () => {
  dir = tempDir();
  tokensFile = join(dir, "identities.json");
  tokens.alice = await addTokenWithCli(tokensFile, "alice", ["write"], "alice");
  tokens.bob = await addTokenWithCli(tokensFile, "bob", ["write"], "bob");
  tokens.aliceReader = await addTokenWithCli(tokensFile, "alice", ["read"], "alice-dashboard");
  tokens.ops = await addTokenWithCli(tokensFile, "ops", ["admin"], "ops");
  server = await spawnServer(["--primary", "memory:", "--auth", "tokens", "--tokens-file", tokensFile]);
  alice = client(tokens.alice);
  bob = client(tokens.bob);
  aliceReader = client(tokens.aliceReader);
  ops = client(tokens.ops);
  for (const [tenant, kv] of [["alice", alice], ["bob", bob]] as const) {
    for (const ns of NAMESPACES) {
      for (const key of keysOf(tenant)) await kv.write(ref(ns, key), Buffer.from(`${tenant}:${ns.primaryNamespace}/${ns.secondaryNamespace}/${key}`));
    }
  }
});

afterAll(async () => {
  for (const made of clients.splice(0)) await made.close();
  if (server !== undefined) expect(await server.kill()).toEqual({ code: 0, signal: null });
  removeTempDirs();
});

it("token add prints the token as its last line and stores only its hash", () => {
  const file = readFileSync(tokensFile, "utf8");
  for (const token of Object.values(tokens)) {
    expect(file).not.toContain(token);
    expect(file).not.toContain(token.slice(4));
  }
  const entries = (JSON.parse(file) as { identities: Array<Record<string, unknown>> }).identities;
  // Each entry also gets an id and its creation time (for token list / rm).
  const withId = (entry: Record<string, unknown>) => ({ ...entry, id: expect.stringMatching(/^[0-9a-f]{16}$/), created: expect.any(String) });
  expect(entries).toEqual([
    withId({ name: "alice", store: "alice", roles: ["write"], tokenSha256: hashToken(tokens.alice) }),
    withId({ name: "bob", store: "bob", roles: ["write"], tokenSha256: hashToken(tokens.bob) }),
    withId({ name: "alice-dashboard", store: "alice", roles: ["read"], tokenSha256: hashToken(tokens.aliceReader) }),
    withId({ name: "ops", store: "ops", roles: ["admin"], tokenSha256: hashToken(tokens.ops) }),
  ]);
  expect(statSync(tokensFile).mode & 0o777).toBe(0o600);
  expect(new Set(Object.values(tokens)).size).toBe(4);
});

describe("two tenants with the same namespaces and keys", () => {
  it("each reads only its own values", async () => {
    for (const [tenant, kv] of [["alice", alice], ["bob", bob]] as const) {
      for (const ns of NAMESPACES) {
        for (const key of keysOf(tenant)) {
          expect(text(await kv.read(ref(ns, key)))).toBe(`${tenant}:${ns.primaryNamespace}/${ns.secondaryNamespace}/${key}`);
        }
        const other = tenant === "alice" ? "bob" : "alice";
        await expectCode(kv.read(ref(ns, `only_${other}_0`)), "not-found");
      }
    }
  });

  it("each lists, pages and enumerates only its own keys", async () => {
    for (const [tenant, kv] of [["alice", alice], ["bob", bob]] as const) {
      for (const ns of NAMESPACES) {
        expect((await kv.list(ns)).sort()).toEqual(keysOf(tenant).sort());
        const paged: string[] = [];
        let pageToken = "";
        let pages = 0;
        do {
          const page = await kv.listPage(ns, { pageSize: 2, pageToken });
          expect(page.keys.length).toBeLessThanOrEqual(2);
          paged.push(...page.keys);
          pageToken = page.nextPageToken;
          pages++;
        } while (pageToken !== "");
        expect(pages).toBe(4); // 7 keys, 2 a page
        expect(paged.sort()).toEqual(keysOf(tenant).sort());
      }
      const enumerated = await allKeys(kv, {}, 4);
      expect(new Set(enumerated.map((k) => k.storeId))).toEqual(new Set([tenant]));
      const expected = NAMESPACES.flatMap((ns) => keysOf(tenant).map((key) => `${tenant}/${ns.primaryNamespace}/${ns.secondaryNamespace}/${key}`));
      expect(paths(enumerated).sort()).toEqual(expected.sort());
    }
  });

  it("a page token of one tenant is refused for the other", async () => {
    const ns = NAMESPACES[1]!;
    const page = await alice.listPage(ns, { pageSize: 2 });
    expect(page.nextPageToken).not.toBe("");
    const message = await expectCode(bob.listPage(ns, { pageSize: 2, pageToken: page.nextPageToken }), "invalid-argument");
    expect(message).toMatch(/page_token/);
    // alice can still follow it
    expect((await alice.listPage(ns, { pageSize: 2, pageToken: page.nextPageToken })).keys).toHaveLength(2);

    const allPage = await alice.listAllKeys({ limit: 2 });
    expect(allPage.nextPageToken).not.toBe("");
    await expectCode(bob.listAllKeys({ limit: 2, pageToken: allPage.nextPageToken }), "invalid-argument");
  });

  it("removing in one tenant leaves the other's key intact", async () => {
    const ns = NAMESPACES[1]!;
    expect(await alice.remove(ref(ns, "k0"))).toBe("applied");
    await expectCode(alice.read(ref(ns, "k0")), "not-found");
    expect(text(await bob.read(ref(ns, "k0")))).toBe("bob:monitors//k0");
    expect(await bob.list(ns)).toContain("k0");
    expect(await alice.list(ns)).not.toContain("k0");
    // put it back, so later tests see the full set
    await alice.write(ref(ns, "k0"), Buffer.from("alice:monitors//k0"));
  });
});

describe("refused credentials change nothing", () => {
  it("an unknown token, a malformed header and no credentials are UNAUTHENTICATED", async () => {
    const before = await everything();
    expect(before).toHaveLength(2 * NAMESPACES.length * keysOf("x").length);
    const ns = NAMESPACES[1]!;
    const cases: Array<[string | undefined, RegExp]> = [
      ["Bearer tkv_not-a-token-anybody-was-given", /unknown token/],
      ["Basic x", /not "Bearer <token>"/],
      [`Basic ${Buffer.from(`alice:${tokens.alice}`).toString("base64")}`, /not "Bearer <token>"/],
      [undefined, /missing credentials/],
    ];
    for (const [authorization, reason] of cases) {
      const raw = new RawKvClient(server.address, authorization);
      clients.push(raw);
      const key = { ...ns, storeId: "", key: "k1" };
      const attempts = [
        raw.call("write", { ...key, value: Buffer.from("intruder") }),
        raw.call("remove", key),
        raw.call("mutate", { mutations: [{ ...key, kind: { case: "write", value: { value: Buffer.from("intruder") } } }] }),
        raw.call("txn", { operations: [{ ...key, kind: { case: "remove", value: {} } }] }),
        raw.call("read", key),
        raw.call("list", ns),
        raw.call("listAllKeys", { allStores: true }),
      ];
      for (const attempt of attempts) expect(await expectCode(attempt, "unauthenticated")).toMatch(reason);
    }
    const unknown = client("tkv_unknown");
    await expectCode(unknown.write(ref(ns, "k1"), Buffer.from("intruder")), "unauthenticated");
    expect(await everything()).toEqual(before);
    expect(text(await alice.read(ref(ns, "k1")))).toBe("alice:monitors//k1");
  });

  it("a read token reads its store but cannot Write, Remove, Mutate or Txn", async () => {
    const before = await everything();
    const ns = NAMESPACES[2]!;
    expect(text(await aliceReader.read(ref(ns, "k2")))).toBe("alice:monitors/archive/k2");
    expect((await aliceReader.list(ns)).sort()).toEqual(keysOf("alice").sort());

    await expectCode(aliceReader.write(ref(ns, "k2"), Buffer.from("overwritten")), "permission-denied");
    await expectCode(aliceReader.write(ref(ns, "new"), Buffer.from("created")), "permission-denied");
    await expectCode(aliceReader.remove(ref(ns, "k2")), "permission-denied");
    const results = await aliceReader.mutate([
      { ref: ref(ns, "k3"), write: Buffer.from("overwritten") },
      { ref: ref(ns, "k4"), remove: {} },
    ]);
    expect(results.map((r) => (r instanceof StoreError ? r.code : r))).toEqual(["permission-denied", "permission-denied"]);
    await expectCode(
      aliceReader.txn({ checks: [{ ...ref(ns, "k2"), expect: "present" }], operations: [{ ...ref(ns, "k2"), kind: "remove" }] }),
      "permission-denied",
    );
    expect(await everything()).toEqual(before);
  });

  it("naming another store with a write token is PERMISSION_DENIED", async () => {
    const before = await everything();
    const ns = NAMESPACES[0]!;
    const bobs = { ...ns, storeId: "bob" };
    await expectCode(alice.write({ ...bobs, key: "k0" }, Buffer.from("alice was here")), "permission-denied");
    await expectCode(alice.remove({ ...bobs, key: "k0" }), "permission-denied");
    await expectCode(alice.read({ ...bobs, key: "k0" }), "permission-denied");
    await expectCode(alice.list(bobs), "permission-denied");
    await expectCode(alice.listPage(bobs), "permission-denied");
    await expectCode(alice.listAllKeys({ storeId: "bob" }), "permission-denied");
    await expectCode(alice.listAllKeys({ allStores: true }), "permission-denied");
    await expectCode(alice.txn({ checks: [], operations: [{ ...bobs, key: "k0", kind: "write", value: Buffer.from("x") }] }), "permission-denied");
    // a check on another store's key is refused too: it would tell whether the key exists
    await expectCode(
      alice.txn({ checks: [{ ...bobs, key: "k0", expect: "present" }], operations: [{ ...ns, key: "k0", kind: "write", value: Buffer.from("x") }] }),
      "permission-denied",
    );
    const [result] = await alice.mutate([{ ref: { ...bobs, key: "k0" }, write: Buffer.from("alice was here") }]);
    expect(result).toBeInstanceOf(StoreError);
    expect((result as StoreError).code).toBe("permission-denied");
    // naming its own store is fine
    expect(text(await alice.read({ ...ns, storeId: "alice", key: "k0" }))).toBe("alice://k0");
    expect(await everything()).toEqual(before);
    expect(text(await bob.read(ref(ns, "k0")))).toBe("bob://k0");
  });

  it("AdminService needs the admin role", async () => {
    const asAlice = new TierkvAdminClient({ address: server.address, bearerToken: tokens.alice });
    const asOps = new TierkvAdminClient({ address: server.address, bearerToken: tokens.ops });
    clients.push(asAlice, asOps);
    expect(await expectCode(asAlice.backupStatus(), "permission-denied")).toMatch(/admin role/);
    await expectCode(
      (async () => {
        for await (const progress of asAlice.resync()) void progress;
      })(),
      "permission-denied",
    );
    const status = await asOps.backupStatus();
    expect(status.configured).toBe(false);
    expect(status.owedKeys).toBe(0n);
    // admin alone does not write
    await expectCode(ops.write(ref(NAMESPACES[0]!, "k0"), Buffer.from("ops")), "permission-denied");
  });
});

describe("SIGHUP reloads the identities file", () => {
  it("a token added while the server runs works after SIGHUP, without a restart", async () => {
    const carolToken = await addTokenWithCli(tokensFile, "carol", ["write"], "carol");
    const carol = client(carolToken);
    const key = ref(NAMESPACES[1]!, "k0");
    await expectCode(carol.write(key, Buffer.from("too early")), "unauthenticated");
    const pid = server.child.pid!;
    process.kill(pid, "SIGHUP");
    await waitForLog(server, (entry) => entry["msg"] === "credentials reloaded");
    expect(await carol.write(key, Buffer.from("carol:monitors//k0"))).toBe("applied");
    expect(text(await carol.read(key))).toBe("carol:monitors//k0");
    expect(text(await alice.read(key))).toBe("alice:monitors//k0");
    expect(server.child.pid).toBe(pid);
    expect(server.child.exitCode).toBeNull();
    expect(paths(await allKeys(ops, { storeId: "carol" }))).toEqual(["carol/monitors//k0"]);
  });

  it("a broken file and SIGHUP keep the previous identities and log an error", async () => {
    writeFileSync(tokensFile, '{"identities": [ {"store": "mallory", "roles": ["replicate"]');
    process.kill(server.child.pid!, "SIGHUP");
    const logged = await waitForLog(server, (entry) => entry["msg"] === "credentials not reloaded: keeping the previous ones");
    expect(logged["level"]).toBe(50);
    expect(String(logged["err"])).toContain(tokensFile);
    const key = ref(NAMESPACES[0]!, "k1");
    expect(text(await alice.read(key))).toBe("alice://k1");
    expect(await alice.write(key, Buffer.from("alice after a broken reload"))).toBe("applied");
    expect(text(await alice.read(key))).toBe("alice after a broken reload");
    expect(text(await bob.read(key))).toBe("bob://k1");
    expect(server.child.exitCode).toBeNull();
  });
});
