// Issue 17, with real processes: what must be decided once is decided by the store.
// - Two `tierkv serve` instances on one PostgreSQL database, one clock 2 s and then 5 min ahead of
//   the other (libfaketime): a mutation without a caller version through either instance, in any
//   order, on every surface (Write, Remove, Mutate, Txn, VSS, Connect), is applied, and both read
//   the last one acknowledged.
// - One tenant's far-ahead versions leave another tenant's own wall-clock versions applied.
// - Quotas under 64 concurrent callers on every surface, on SQLite and on two instances sharing
//   PostgreSQL: never past the limit, and the usage record equals a recount afterwards.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TierkvAdminClient } from "../../src/client/admin-client.js";
import { TierkvClient } from "../../src/client/client.js";
import { StoreError } from "../../src/store/errors.js";
import type { KeyRef } from "../../src/store/types.js";
import { skewedClock } from "../support/faketime.js";
import { usePostgres } from "../support/postgres.js";
import { runCli, spawnServer, type ServerProcess } from "../support/process.js";
import { text, VssTestClient } from "../vss/vss-harness.js";

const dir = mkdtempSync(join(tmpdir(), "tierkv-decided-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ref = (key: string, storeId?: string): KeyRef => ({ primaryNamespace: "skew", secondaryNamespace: "", key, ...(storeId && { storeId }) });
const bytes = (value: string): Uint8Array => Buffer.from(value);

/** A running instance with a gRPC client and the address of its HTTP listener (VSS, Connect). */
interface Instance {
  readonly server: ServerProcess;
  readonly kv: TierkvClient;
  readonly http: string;
}

async function instance(args: string[], env?: NodeJS.ProcessEnv, token?: string): Promise<Instance> {
  const server = await spawnServer([...args, "--vss-listen", "127.0.0.1:0"], env === undefined ? {} : { env });
  const kv = new TierkvClient({ address: server.address, timeoutMs: 20_000, ...(token !== undefined && { bearerToken: token }) });
  return { server, kv, http: `http://${server.listening["vss"] as string}` };
}

async function stop(...instances: Instance[]): Promise<void> {
  for (const one of instances) {
    await one.kv.close();
    await one.server.kill();
  }
}

async function readText(kv: TierkvClient, key: KeyRef): Promise<string | undefined> {
  try {
    return text(await kv.read(key));
  } catch (error) {
    if (error instanceof StoreError && error.code === "not-found") return undefined;
    throw error;
  }
}

/** A Connect JSON call, as curl makes it. */
async function connect(http: string, method: string, body: unknown, token?: string): Promise<Response> {
  return fetch(`${http}/tierkv.v1.KVStoreService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token !== undefined && { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });
}

describe("two instances on one PostgreSQL database, their clocks apart", () => {
  const postgres = usePostgres();

  for (const skew of ["+2s", "+5m"]) {
    describe(`one clock ${skew} ahead`, () => {
      let a: Instance;
      let b: Instance;
      beforeAll(async () => {
        const uri = await postgres().createDatabase();
        a = await instance(["--primary", uri]);
        b = await instance(["--primary", uri], skewedClock(skew));
      });
      afterAll(async () => {
        if (a !== undefined && b !== undefined) await stop(a, b);
      });

      it("Write and Remove without a version through either instance, in either order: applied, and both read the last one", async () => {
        for (const [first, second, name] of [[b, a, "b-then-a"], [a, b, "a-then-b"]] as const) {
          for (let i = 0; i < 5; i++) {
            const key = ref(`${name}-${i}`);
            let version = 0n;
            expect(await first.kv.write(key, bytes("first"))).toBe("applied");
            expect(await second.kv.write(key, bytes("second"), { onVersion: (v) => (version = v) })).toBe("applied");
            expect((await a.kv.readVersioned(key)).version).toBe(version);
            for (const reader of [a, b]) expect(await readText(reader.kv, key)).toBe("second");
            expect(await first.kv.remove(key)).toBe("applied");
            for (const reader of [a, b]) expect(await readText(reader.kv, key)).toBeUndefined();
            expect(await second.kv.write(key, bytes("again"))).toBe("applied");
            expect(await first.kv.write(key, bytes("last"))).toBe("applied");
            for (const reader of [a, b]) expect(await readText(reader.kv, key)).toBe("last");
          }
        }
      });

      it("Mutate and Txn without a version through either instance: applied, and both read the last one", async () => {
        for (const [first, second] of [[b, a], [a, b]] as const) {
          const keys = Array.from({ length: 5 }, (_, i) => ref(`batch-${i}`));
          expect(await first.kv.mutate(keys.map((key) => ({ ref: key, write: bytes("mutate-1") })))).toEqual(keys.map(() => "applied"));
          expect(await second.kv.mutate(keys.map((key) => ({ ref: key, write: bytes("mutate-2") })))).toEqual(keys.map(() => "applied"));
          for (const key of keys) for (const reader of [a, b]) expect(await readText(reader.kv, key)).toBe("mutate-2");
          const write = (value: string) => keys.map((key) => ({ ...key, kind: "write" as const, value: bytes(value) }));
          for (const [via, value] of [[first, "txn-1"], [second, "txn-2"]] as const) {
            const result = await via.kv.txn({ checks: [], operations: write(value) });
            expect(result).toMatchObject({ succeeded: true, outcomes: keys.map(() => "applied") });
          }
          for (const key of keys) for (const reader of [a, b]) expect(await readText(reader.kv, key)).toBe("txn-2");
        }
      });

      it("VSS puts (version -1) and deletes, and Connect writes, through either instance: applied, and both read the last one", async () => {
        for (const [first, second] of [[b, a], [a, b]] as const) {
          const vss = (one: Instance) => new VssTestClient(`${one.http}/vss`, "wallet");
          for (let i = 0; i < 5; i++) {
            const key = `obfuscated+${i}/=`;
            await vss(first).put([[key, "first", -1]]);
            await vss(second).put([[key, "second", -1]]);
            for (const reader of [a, b]) expect(text((await vss(reader).get(key)).value)).toBe("second");
            await vss(first).delete(key, -1);
            for (const reader of [a, b]) await expect(vss(reader).get(key)).rejects.toMatchObject({ status: 404 });
          }
          const key = { primaryNamespace: "skew", key: "connect" };
          for (const [via, value] of [[first, "one"], [second, "two"]] as const) {
            const response = await connect(via.http, "Write", { ...key, value: Buffer.from(value).toString("base64") });
            expect(response.status).toBe(200);
            expect(await response.json()).toMatchObject({ applied: true });
          }
          for (const reader of [a, b]) expect(await readText(reader.kv, ref("connect"))).toBe("two");
        }
      });
    });
  }
});

it("one tenant's far-ahead versions leave another tenant's own wall-clock versions applied", { timeout: 60_000 }, async () => {
  const one = await instance(["--primary", `sqlite:${join(dir, "tenants.db")}`]);
  try {
    // Tenant A writes nine minutes ahead (inside the 10-minute allowance).
    const ahead = BigInt(Date.now() + 9 * 60 * 1000) << 20n;
    expect(await one.kv.write(ref("k", "tenant-a"), bytes("far"), { version: ahead })).toBe("applied");
    // Tenant B: a write without a version, then its own wall-clock versions, as LDK callers make them.
    let plainVersion = 0n;
    expect(await one.kv.write(ref("k", "tenant-b"), bytes("plain"), { onVersion: (v) => (plainVersion = v) })).toBe("applied");
    expect(plainVersion).toBeLessThan(ahead);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await one.kv.write(ref("k", "tenant-b"), bytes("own clock"), { version: BigInt(Date.now()) << 20n })).toBe("applied");
    expect(await readText(one.kv, ref("k", "tenant-b"))).toBe("own clock");
  } finally {
    await stop(one);
  }
});

describe("quotas under 64 concurrent callers on every surface", () => {
  const postgres = usePostgres();
  const CALLERS = 64;
  const MAX_KEYS = 10;

  /** A token for `store` with a 10-key quota, and an admin token. */
  async function tokens(file: string, store: string): Promise<{ user: string; admin: string }> {
    const add = async (args: string[]): Promise<string> => {
      const result = await runCli(["token", "add", "--tokens-file", file, ...args]);
      expect(result.code, result.stderr).toBe(0);
      return result.stdout.toString().trimEnd().split("\n").at(-1)!;
    };
    return { user: await add(["--store", store, "--max-keys", String(MAX_KEYS)]), admin: await add(["--store", "ops", "--role", "admin"]) };
  }

  const setups: Array<[string, () => Promise<{ instances: Instance[]; admin: string; tokenOf: () => string }>]> = [
    [
      "one instance on SQLite",
      async () => {
        const file = join(dir, `tokens-${Math.random()}.json`);
        const { user, admin } = await tokens(file, "alice");
        const args = ["--primary", `sqlite:${join(dir, `quota-${Math.random()}.db`)}`, "--auth", "tokens", "--tokens-file", file];
        return { instances: [await instance(args, undefined, user)], admin, tokenOf: () => user };
      },
    ],
    [
      "two instances sharing PostgreSQL",
      async () => {
        const file = join(dir, `tokens-${Math.random()}.json`);
        const { user, admin } = await tokens(file, "alice");
        const args = ["--primary", await postgres().createDatabase(), "--auth", "tokens", "--tokens-file", file];
        return { instances: [await instance(args, undefined, user), await instance(args, skewedClock("+2s"), user)], admin, tokenOf: () => user };
      },
    ],
  ];

  for (const [name, setup] of setups) {
    it(`${name}: Write, Mutate, Txn, VSS and Connect never pass the quota, and usage equals a recount`, { timeout: 120_000 }, async () => {
      const { instances, admin, tokenOf } = await setup();
      const via = (i: number): Instance => instances[i % instances.length]!;
      const adminClient = new TierkvAdminClient({ address: instances[0]!.server.address, bearerToken: admin });
      const checkStore = async (store: string, expectedKeys: number): Promise<void> => {
        const recount = await adminClient.storeUsage(store, true);
        expect({ store, keys: Number(recount.keys), driftKeys: Number(recount.driftKeys), driftBytes: Number(recount.driftBytes) }).toEqual({
          store,
          keys: expectedKeys,
          driftKeys: 0,
          driftBytes: 0,
        });
      };
      const clear = async (): Promise<void> => {
        const page = await instances[0]!.kv.listAllKeys({ limit: 1000 });
        await Promise.all(page.keys.map((key) => instances[0]!.kv.remove(key)));
        await checkStore("alice", 0);
      };
      try {
        const settled = (results: PromiseSettledResult<unknown>[]): number => results.filter((r) => r.status === "fulfilled").length;

        // Write
        expect(settled(await Promise.allSettled(Array.from({ length: CALLERS }, (_, i) => via(i).kv.write(ref(`w${i}`), bytes("v")))))).toBe(MAX_KEYS);
        await checkStore("alice", MAX_KEYS);
        await clear();

        // Mutate: one of 100 writes, item by item, then concurrent ones.
        const items = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ({ ref: ref(`${prefix}${i}`), write: bytes("v") }));
        const one = await via(0).kv.mutate(items("m", 100));
        expect(one.filter((r) => r === "applied")).toHaveLength(MAX_KEYS);
        expect(one.filter((r) => r instanceof StoreError && r.code === "resource-exhausted")).toHaveLength(100 - MAX_KEYS);
        await clear();
        const many = await Promise.all(Array.from({ length: CALLERS / 8 }, (_, i) => via(i).kv.mutate(items(`c${i}-`, 8))));
        expect(many.flat().filter((r) => r === "applied")).toHaveLength(MAX_KEYS);
        await checkStore("alice", MAX_KEYS);
        await clear();

        // Txn: 20 concurrent batches of 5 keys, each refused or applied whole.
        const txns = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) =>
            via(i).kv.txn({ checks: [], operations: Array.from({ length: 5 }, (_, j) => ({ ...ref(`t${i}-${j}`), kind: "write" as const, value: bytes("v") })) }),
          ),
        );
        for (const r of txns) if (r.status === "rejected") expect(r.reason).toMatchObject({ code: "resource-exhausted" });
        expect(settled(txns)).toBe(MAX_KEYS / 5);
        await checkStore("alice", MAX_KEYS);
        await clear();

        // Connect JSON
        const connects = await Promise.all(
          Array.from({ length: CALLERS }, (_, i) => connect(via(i).http, "Write", { primaryNamespace: "skew", key: `j${i}`, value: "dg==" }, tokenOf())),
        );
        expect(connects.filter((response) => response.status === 200)).toHaveLength(MAX_KEYS);
        await checkStore("alice", MAX_KEYS);

        // VSS: the user's store ids share its quota (one here).
        const vss = (i: number) => new VssTestClient(`${via(i).http}/vss`, "wallet", () => ({ authorization: `Bearer ${tokenOf()}` }));
        const puts = await Promise.allSettled(Array.from({ length: CALLERS }, (_, i) => vss(i).put([[`key${i}`, "v", -1]])));
        expect(settled(puts)).toBe(MAX_KEYS);
        await checkStore("vss:alice:wallet", MAX_KEYS);
      } finally {
        adminClient.close();
        await stop(...instances);
      }
    });
  }
});
