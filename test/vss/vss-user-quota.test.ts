// Issue 22, with real `tierkv serve --vss-listen` processes and LDK Node's signature header: one
// quota per VSS user, whatever the number of its store ids.
// - A user over several store ids is held to one quota of keys and of bytes, and to the cap on
//   store ids, on SQLite and on PostgreSQL; other users keep theirs.
// - `--sigs-allow-file`: an unknown key pair is refused (401); after the file is edited and SIGHUP
//   sent it is accepted, with the quota the file gives it.
// - Two instances on one PostgreSQL database, concurrent puts of one user on different store ids:
//   the user's total never passes the quota (recounted afterwards).

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { afterAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/vss/v1/vss_pb.js";
import { TierkvAdminClient } from "../../src/client/admin-client.js";
import { addTokenWithCli, waitForLog } from "../support/auth.js";
import { usePostgres } from "../support/postgres.js";
import { spawnServer, type ServerProcess } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { refused, signatureHeader, VssTestClient } from "./vss-harness.js";
import { vssStoreId } from "../../src/vss/vss-service.js";

const dir = tempDir();
afterAll(() => removeTempDirs());
const postgres = usePostgres();

/** A VSS user: a signing key pair, and its user name on the server (the public key's hex). */
interface User {
  readonly secret: Uint8Array;
  readonly hex: string;
}

function newUser(): User {
  const secret = secp256k1.utils.randomSecretKey();
  return { secret, hex: Buffer.from(secp256k1.getPublicKey(secret, true)).toString("hex") };
}

/** A running instance: its VSS base URL and an admin client. */
interface Instance {
  readonly server: ServerProcess;
  readonly url: string;
  readonly admin: TierkvAdminClient;
}

/** `tierkv serve` with VSS under `--auth sigs`, plus an admin token (store-usage recounts). */
async function start(primary: string, extra: string[]): Promise<Instance> {
  const tokensFile = join(dir, `tokens-${Math.random()}.json`);
  const adminToken = await addTokenWithCli(tokensFile, "ops", ["admin"]);
  const server = await spawnServer(["--primary", primary, "--vss-listen", "127.0.0.1:0", "--auth", "sigs,tokens", "--tokens-file", tokensFile, ...extra]);
  return { server, url: `http://${server.listening["vss"] as string}/vss`, admin: new TierkvAdminClient({ address: server.address, bearerToken: adminToken }) };
}

async function stop(...instances: Instance[]): Promise<void> {
  for (const one of instances) {
    one.admin.close();
    await one.server.kill();
  }
}

const client = (instance: Instance, user: User, storeId: string): VssTestClient =>
  new VssTestClient(instance.url, storeId, () => ({ authorization: signatureHeader(user.secret) }));

/** Recounts each of the user's store ids from the data (no drift expected) and sums them. */
async function recounted(instance: Instance, user: User, storeIds: readonly string[]): Promise<{ keys: number; bytes: number }> {
  let keys = 0;
  let bytes = 0;
  for (const storeId of storeIds) {
    const usage = await instance.admin.storeUsage(vssStoreId(user.hex, storeId), true);
    expect({ storeId, driftKeys: usage.driftKeys, driftBytes: usage.driftBytes }).toEqual({ storeId, driftKeys: 0n, driftBytes: 0n });
    keys += Number(usage.keys);
    bytes += Number(usage.bytes);
  }
  return { keys, bytes };
}

const backends: Array<[string, () => Promise<string>]> = [
  ["SQLite", async () => `sqlite:${join(dir, `vss-${Math.random()}.db`)}`],
  ["PostgreSQL", () => postgres().createDatabase()],
];

for (const [backend, primary] of backends) {
  describe(`${backend}: one quota per VSS user`, () => {
    it("holds a user's store ids to one quota of keys and bytes, and to the cap on store ids; other users keep theirs", { timeout: 60_000 }, async () => {
      const instance = await start(await primary(), ["--quota-max-keys", "10", "--quota-max-bytes", "1000", "--quota-max-stores", "5"]);
      try {
        const [alice, bob, carol] = [newUser(), newUser(), newUser()];
        const stores = ["s1", "s2", "s3", "s4", "s5"];
        // Alice: 2 keys of 10 bytes in each of 5 store ids fill her 10 keys.
        for (const storeId of stores) await client(instance, alice, storeId).put([["a", "0123456789", -1], ["b", "0123456789", 0]]);
        const keys = await refused(client(instance, alice, "s1").put([["c", "v", -1]]), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
        expect(keys.serverMessage).toBe(`the VSS stores of user ${alice.hex} hold 10 keys; this would make 11 and their quota is 10 keys`);
        // Bob's quota is his own.
        await client(instance, bob, "s1").put(Array.from({ length: 10 }, (_, i) => [`k${i}`, "v", -1] as const));
        await refused(client(instance, bob, "s2").put([["k", "v", -1]]), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
        // A delete in one store id makes room in another; bytes are held over the store ids too.
        await client(instance, alice, "s2").delete("a", -1);
        const bytes = await refused(client(instance, alice, "s3").put([["c", "x".repeat(911), -1]]), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
        expect(bytes.serverMessage).toBe(`the VSS stores of user ${alice.hex} hold 90 bytes of values; this needs 911 more and their quota is 1000 bytes`);
        await client(instance, alice, "s3").put([["c", "x".repeat(910), -1]]);
        expect(await recounted(instance, alice, stores)).toEqual({ keys: 10, bytes: 1000 });
        // Carol: a sixth store id is refused; an emptied one frees its place.
        for (const storeId of stores) await client(instance, carol, storeId).put([["k", "v", -1]]);
        const cap = await refused(client(instance, carol, "s6").put([["k", "v", -1]]), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
        expect(cap.serverMessage).toBe(`the VSS stores of user ${carol.hex} hold keys in 5 store ids; this would make 6 and their quota is 5 store ids`);
        await client(instance, carol, "s1").put([["k2", "v", -1]]);
        await client(instance, carol, "s1").put([], undefined, [["k", -1], ["k2", -1]]);
        await client(instance, carol, "s6").put([["k", "v", -1]]);
        expect(await recounted(instance, carol, [...stores, "s6"])).toEqual({ keys: 5, bytes: 5 });
      } finally {
        await stop(instance);
      }
    });
  });
}

describe("--sigs-allow-file", () => {
  it("refuses an unknown key pair with 401; after the file is edited and SIGHUP sent, accepts it with the quota the file gives", { timeout: 60_000 }, async () => {
    const [alice, bob] = [newUser(), newUser()];
    const allowFile = join(dir, "allowed-keys.json");
    writeFileSync(allowFile, JSON.stringify({ publicKeys: [{ publicKey: alice.hex, name: "alice-node" }] }));
    const instance = await start(`sqlite:${join(dir, "allow.db")}`, ["--sigs-allow-file", allowFile, "--quota-max-keys", "100"]);
    try {
      await client(instance, alice, "wallet").put([["k", "v", -1]]);
      const refusal = await refused(client(instance, bob, "wallet").put([["k", "v", -1]]), 401, ErrorCode.AUTH_EXCEPTION);
      expect(refusal.serverMessage).toBe(`invalid credentials: the public key ${bob.hex} is not on this server's allow-list (--sigs-allow-file)`);
      await refused(client(instance, bob, "wallet").get("k"), 401, ErrorCode.AUTH_EXCEPTION);

      // Bob is added with a quota of 2 keys over his store ids; Alice is taken off the list.
      writeFileSync(allowFile, JSON.stringify({ publicKeys: [{ publicKey: bob.hex, name: "bob-node", maxKeys: 2 }] }));
      const pid = instance.server.child.pid!;
      instance.server.child.kill("SIGHUP");
      await waitForLog(instance.server, (entry) => entry["msg"] === "credentials reloaded");
      await client(instance, bob, "wallet").put([["k", "v", -1]]);
      await client(instance, bob, "other").put([["k", "v", -1]]);
      const quota = await refused(client(instance, bob, "third").put([["k", "v", -1]]), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
      expect(quota.serverMessage).toContain("hold 2 keys; this would make 3 and their quota is 2 keys");
      await refused(client(instance, alice, "wallet").get("k"), 401, ErrorCode.AUTH_EXCEPTION);
      expect(instance.server.child.pid).toBe(pid);
    } finally {
      await stop(instance);
    }
  });
});

describe("two instances on one PostgreSQL database", () => {
  it("concurrent puts of one user on different store ids never pass the user's quota of keys or bytes", { timeout: 120_000 }, async () => {
    const uri = await postgres().createDatabase();
    const limits = ["--quota-max-keys", "10", "--quota-max-bytes", "5000"];
    const [one, two] = [await start(uri, limits), await start(uri, limits)];
    try {
      const via = (i: number): Instance => (i % 2 === 0 ? one : two);
      const stores = Array.from({ length: 8 }, (_, i) => `node-${i}`);
      const attempt = async (user: User, size: number): Promise<number> => {
        const results = await Promise.allSettled(
          Array.from({ length: 64 }, (_, i) => client(via(i), user, stores[i % stores.length]!).put([[`key${i}`, "x".repeat(size), -1]])),
        );
        for (const result of results) {
          if (result.status === "rejected") expect(result.reason).toMatchObject({ status: 400, code: ErrorCode.INVALID_REQUEST_EXCEPTION });
        }
        return results.filter((result) => result.status === "fulfilled").length;
      };
      // Keys bind first: exactly 10 of 64 puts fit.
      const keysUser = newUser();
      expect(await attempt(keysUser, 1)).toBe(10);
      expect(await recounted(one, keysUser, stores)).toEqual({ keys: 10, bytes: 10 });
      // Bytes bind first: 600-byte values, 8 fit in 5,000 bytes.
      const bytesUser = newUser();
      expect(await attempt(bytesUser, 600)).toBe(8);
      expect(await recounted(two, bytesUser, stores)).toEqual({ keys: 8, bytes: 4800 });
    } finally {
      await stop(one, two);
    }
  });
});
