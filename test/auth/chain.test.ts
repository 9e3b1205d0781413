// Tenancy across chained instances (real processes): A (`--auth tokens`) backs up to B
// (`--auth tokens`) with a `replicate` token of its own, sent through `token_file=`. Two tenants
// writing the same keys through A stay apart in B's SQLite file; each tenant's own B credential
// sees only its keys there; a resync through A (admin token, `tierkv resync`) repairs both
// tenants' copies in B.
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import type { KeyRef } from "../../src/store/types.js";
import { addTokenWithCli, allKeys, expectCode, paths, writeTokenFile } from "../support/auth.js";
import { runCli, spawnServer, type ServerProcess } from "../support/process.js";
import { allStoredRows, type FullRow } from "../support/sqlite-rows.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const TENANTS = ["alice", "bob"] as const;
type Tenant = (typeof TENANTS)[number];
const KEYS: KeyRef[] = [
  { primaryNamespace: "", secondaryNamespace: "", key: "manager" },
  { primaryNamespace: "monitors", secondaryNamespace: "", key: "chan_1" },
  { primaryNamespace: "monitors", secondaryNamespace: "", key: "chan_2" },
  { primaryNamespace: "monitors", secondaryNamespace: "", key: "chan_3" },
  { primaryNamespace: "monitors", secondaryNamespace: "archive", key: "chan_0" },
];
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("utf8");
const valueOf = (tenant: Tenant, ref: KeyRef): string => `${tenant}'s ${ref.primaryNamespace}/${ref.secondaryNamespace}/${ref.key}`;

let dir: string;
let db: { a: string; b: string };
let a: ServerProcess;
let b: ServerProcess;
/** Tokens at A (tenants and an operator) and at B (tenants; A's replicate token lives in a file). */
const atA = {} as Record<Tenant | "ops", string>;
const atB = {} as Record<Tenant, string>;
const clients: TierkvClient[] = [];

function client(server: ServerProcess, token: string): TierkvClient {
  const made = new TierkvClient({ address: server.address, bearerToken: token, timeoutMs: 20_000 });
  clients.push(made);
  return made;
}

/** The rows of one store in a SQLite file, without the store column. */
function rowsOf(rows: FullRow[], store: string): Array<Omit<FullRow, "store_id">> {
  return rows.filter((row) => row.store_id === store).map(({ store_id: _, ...rest }) => rest);
}

beforeAll(async () => {
  dir = tempDir();
  db = { a: join(dir, "a.db"), b: join(dir, "b.db") };
  const identitiesA = join(dir, "a-identities.json");
  const identitiesB = join(dir, "b-identities.json");
  const replicateToken = await addTokenWithCli(identitiesB, "instance-a", ["replicate"], "instance A");
  for (const tenant of TENANTS) {
    atB[tenant] = await addTokenWithCli(identitiesB, tenant, ["write"], tenant);
    atA[tenant] = await addTokenWithCli(identitiesA, tenant, ["write"], tenant);
  }
  atA.ops = await addTokenWithCli(identitiesA, "ops", ["admin"], "ops");
  const replicateTokenFile = writeTokenFile(dir, "a-to-b.token", replicateToken);

  b = await spawnServer(["--primary", `sqlite:${db.b}`, "--auth", "tokens", "--tokens-file", identitiesB]);
  a = await spawnServer([
    "--primary", `sqlite:${db.a}`,
    "--auth", "tokens",
    "--tokens-file", identitiesA,
    "--backup", `grpc://${b.address}?token_file=${replicateTokenFile}`,
  ]);
});

afterAll(async () => {
  for (const made of clients.splice(0)) await made.close();
  for (const server of [a, b]) if (server !== undefined) await server.kill();
  removeTempDirs();
});

it("two tenants writing the same keys through A stay apart in B, and a resync through A repairs both", async () => {
  // Both tenants write the same keys through A, with a remove and a transaction (mirrored to B
  // with A's revisions, which takes the replicate role there).
  for (const tenant of TENANTS) {
    const kv = client(a, atA[tenant]);
    for (const ref of KEYS) expect(await kv.write(ref, Buffer.from(valueOf(tenant, ref)))).toBe("applied");
    await kv.write(KEYS[1]!, Buffer.from(`${valueOf(tenant, KEYS[1]!)}, second`));
    expect(await kv.remove(KEYS[3]!)).toBe("applied");
    const txn = await kv.txn({
      checks: [{ ...KEYS[2]!, expect: "present" }],
      operations: [{ ...KEYS[2]!, kind: "write", value: Buffer.from(`${valueOf(tenant, KEYS[2]!)}, by txn`) }],
    });
    expect(txn.succeeded).toBe(true);
  }
  const expectedValues = (tenant: Tenant): Map<string, string> =>
    new Map([
      ["/manager", valueOf(tenant, KEYS[0]!)],
      ["monitors/chan_1", `${valueOf(tenant, KEYS[1]!)}, second`],
      ["monitors/chan_2", `${valueOf(tenant, KEYS[2]!)}, by txn`],
      ["monitors/archive/chan_0", valueOf(tenant, KEYS[4]!)],
    ]);
  const valuesIn = (rows: FullRow[], store: string): Map<string, string> =>
    new Map(rowsOf(rows, store).map((r) => [`${r.primary_namespace}/${r.secondary_namespace}${r.secondary_namespace ? "/" : ""}${r.key}`, r.value.toString()]));

  // B's SQLite file holds both tenants, apart, with A's versions and revisions.
  const rowsA = allStoredRows(db.a);
  const rowsB = allStoredRows(db.b);
  expect(new Set(rowsB.map((row) => row.store_id))).toEqual(new Set(TENANTS));
  for (const tenant of TENANTS) {
    expect(valuesIn(rowsB, tenant)).toEqual(expectedValues(tenant));
    expect(rowsOf(rowsB, tenant)).toEqual(rowsOf(rowsA, tenant));
  }
  expect(rowsOf(rowsB, "alice").find((r) => r.key === "chan_1")!.revision).toBe(2n);

  // Each tenant reading B with its own B credential sees exactly its keys.
  for (const tenant of TENANTS) {
    const direct = client(b, atB[tenant]);
    const expected = KEYS.filter((_, i) => i !== 3).map((ref) => `${tenant}/${ref.primaryNamespace}/${ref.secondaryNamespace}/${ref.key}`);
    expect(paths(await allKeys(direct, {}, 2)).sort()).toEqual(expected.sort());
    expect(text(await direct.read(KEYS[0]!))).toBe(valueOf(tenant, KEYS[0]!));
    await expectCode(direct.read(KEYS[3]!), "not-found");
  }

  // bob's write token at B cannot name alice's store, nor list every store.
  const bobAtB = client(b, atB.bob);
  await expectCode(bobAtB.write({ ...KEYS[0]!, storeId: "alice" }, Buffer.from("bob was here")), "permission-denied");
  await expectCode(bobAtB.read({ ...KEYS[0]!, storeId: "alice" }), "permission-denied");
  await expectCode(bobAtB.remove({ ...KEYS[0]!, storeId: "alice" }), "permission-denied");
  await expectCode(bobAtB.listAllKeys({ allStores: true }), "permission-denied");
  // nor may a tenant mirror revisions or make exact copies: that is A's replicate role
  await expectCode(bobAtB.write(KEYS[0]!, Buffer.from("exact"), { exact: true, version: 1n }), "permission-denied");
  expect(allStoredRows(db.b)).toEqual(rowsB);

  // Make B diverge from A, in both tenants, by writing to B directly.
  const aliceAtB = client(b, atB.alice);
  await aliceAtB.write(KEYS[0]!, Buffer.from("changed behind A's back"));
  await aliceAtB.write({ primaryNamespace: "stray", secondaryNamespace: "", key: "only_in_b" }, Buffer.from("stray"));
  await bobAtB.remove(KEYS[4]!);
  await bobAtB.write(KEYS[3]!, Buffer.from("resurrected in B"));
  expect(valuesIn(allStoredRows(db.b), "alice")).not.toEqual(expectedValues("alice"));

  // A resync needs the admin role at A ...
  const aliceTokenFile = writeTokenFile(dir, "alice-at-a.token", atA.alice);
  const refused = await runCli(["--server", a.address, "--token-file", aliceTokenFile, "resync"]);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/admin role/);

  // ... and with it, repairs both tenants' copies in B through A's replicate token.
  const opsTokenFile = writeTokenFile(dir, "ops-at-a.token", atA.ops);
  const resync = await runCli(["--server", a.address, "--token-file", opsTokenFile, "resync"]);
  expect(resync.stderr).not.toMatch(/tierkv:/);
  expect(resync.code).toBe(0);
  // alice: one copied back, one stray removed; bob: one copied back, one removed.
  expect(resync.stdout.toString()).toMatch(/^resync done: scanned \d+, copied 2, removed 2, unchanged 6\n$/);

  expect(text(await aliceAtB.read(KEYS[0]!))).toBe(valueOf("alice", KEYS[0]!));
  await expectCode(aliceAtB.read({ primaryNamespace: "stray", secondaryNamespace: "", key: "only_in_b" }), "not-found");
  expect(text(await bobAtB.read(KEYS[4]!))).toBe(valueOf("bob", KEYS[4]!));
  await expectCode(bobAtB.read(KEYS[3]!), "not-found");

  for (const server of [a, b]) expect(await server.kill()).toEqual({ code: 0, signal: null });
  const finalA = allStoredRows(db.a);
  const finalB = allStoredRows(db.b);
  expect(finalB).toEqual(finalA);
  for (const tenant of TENANTS) expect(valuesIn(finalB, tenant)).toEqual(expectedValues(tenant));
});
