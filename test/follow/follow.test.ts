// Followers against real `tierkv serve` processes (contract §9.5): one behind its leader's
// retention recovers by a full copy; writes to a follower fail on every surface while reads and
// Watch work and its own records stay hidden; a follower of a follower; settings that cannot work.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/vss/v1/vss_pb.js";
import { TierkvClient } from "../../src/client/client.js";
import { StoreError } from "../../src/store/errors.js";
import type { KeyRef } from "../../src/store/types.js";
import { addTokenWithCli, writeTokenFile } from "../support/auth.js";
import { runCli } from "../support/process.js";
import { errorOf } from "../support/store-assertions.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { refused, VssTestClient, text as vssText } from "../vss/vss-harness.js";
import { expectSameContents, headsOf, Instance, waitFor } from "./follow-support.js";

const instances: Instance[] = [];
afterEach(async () => {
  for (const instance of instances.splice(0)) await instance.close();
  removeTempDirs();
});

async function started(args: readonly string[], token?: string): Promise<Instance> {
  const instance = await Instance.create(args, token);
  instances.push(instance);
  await instance.start();
  return instance;
}

const bytes = (value: string): Uint8Array => new TextEncoder().encode(value);
const at = (storeId: string, key: string): KeyRef => ({ storeId, primaryNamespace: "cfg", secondaryNamespace: "", key });

/** The error a watch starts with, or undefined when it delivers a first event instead. */
async function watchError(kv: TierkvClient, request: Parameters<TierkvClient["watch"]>[0]): Promise<StoreError | undefined> {
  const abort = new AbortController();
  try {
    for await (const _ of kv.watch(request, abort.signal)) return undefined;
    return undefined;
  } catch (error) {
    return error as StoreError;
  } finally {
    abort.abort();
  }
}

describe("a follower", () => {
  it("behind its leader's retention recovers by a full copy, removes what the leader removed meanwhile, and tails again", async () => {
    const dir = tempDir();
    const leader = await started(["--primary", `sqlite:${join(dir, "leader.db")}`, "--watch-retention", "10"]);
    const follower = await started(["--primary", `sqlite:${join(dir, "follower.db")}`, "--follow", `grpc://${leader.address}`]);
    const kv = leader.client();
    for (let i = 0; i < 12; i++) await kv.write(at(i % 2 === 0 ? "alice" : "bob", `k${i}`), bytes(`first ${i}`));
    await expectSameContents(kv, follower.client());
    await follower.stop("SIGTERM");

    const heads = await headsOf(kv);
    // While it is away: overwrites, removes of keys it holds, and a store new to it.
    for (let i = 0; i < 30; i++) await kv.write(at(i % 2 === 0 ? "alice" : "bob", `k${i % 6}`), bytes(`second ${i}`));
    for (const key of ["k6", "k8", "k7"]) await kv.remove(at(key === "k7" ? "bob" : "alice", key));
    for (let i = 0; i < 15; i++) await kv.write(at("carol", `c${i}`), bytes(`carol ${i}`));
    // Pruning runs every few seconds: wait (bounded) until the follower's next change is gone.
    await waitFor("the leader to prune past the follower's position", async () => {
      const error = await watchError(kv, { storeId: "alice", start: heads.get("alice")! + 1n });
      return error?.code === "out-of-range";
    }, 30_000);

    await follower.start();
    const contents = await expectSameContents(kv, follower.client());
    expect([...contents.keys()].sort()).toEqual(["alice", "bob", "carol"]);
    expect(contents.get("alice")!.has("cfg/k6")).toBe(false);
    const copies = follower.logs.filter((line) => line.includes('"msg":"copying the leader in full"'));
    expect(copies).toHaveLength(2);
    expect(copies[1]).toMatch(/no longer has the changes this follower needs.*no longer kept/);
    expect((await follower.backupStatus()).follower).toMatchObject({ fullCopies: 1n, state: "tailing", connected: true });
    // It resumes from the heads it noted: what comes next is tailed, not copied again.
    await kv.write(at("alice", "after"), bytes("tailed"));
    await kv.remove(at("carol", "c0"));
    await expectSameContents(kv, follower.client());
    expect(follower.logs.filter((line) => line.includes('"msg":"copying the leader in full"'))).toHaveLength(2);
  });

  it("refuses writes with FAILED_PRECONDITION on gRPC and Connect (VSS: InvalidRequest) naming its leader, and serves reads, Watch and its lag", async () => {
    const dir = tempDir();
    const tokens = join(dir, "identities.json");
    const alice = await addTokenWithCli(tokens, "alice", ["write"]);
    const ops = await addTokenWithCli(tokens, "ops", ["admin"]);
    const replicate = await addTokenWithCli(tokens, "replica", ["replicate"]);
    const tokenFile = writeTokenFile(dir, "replicate.token", replicate);
    const auth = ["--auth", "tokens", "--tokens-file", tokens, "--vss-listen", "127.0.0.1:0"];
    const leader = await started(["--primary", `sqlite:${join(dir, "leader.db")}`, ...auth], replicate);
    const follower = await started(
      ["--primary", `sqlite:${join(dir, "follower.db")}`, ...auth, "--metrics-listen", "127.0.0.1:0", "--follow", `grpc://${leader.address}?token_file=${tokenFile}`],
      replicate,
    );
    const bearer = { authorization: `Bearer ${alice}` };
    const leaderKv = leader.client();
    const aliceOnLeader = new VssTestClient(`http://${leader.running.listening["vss"] as string}/vss`, "wallet", () => bearer);
    const aliceOnFollower = new VssTestClient(`http://${follower.running.listening["vss"] as string}/vss`, "wallet", () => bearer);
    await leaderKv.write(at("alice", "a"), bytes("from the leader"));
    await aliceOnLeader.put([["vk", "vss value", 0]], 0);
    await expectSameContents(leaderKv, follower.client());

    const kv = new TierkvClient({ address: follower.address, bearerToken: alice });
    try {
      const refusal = `this instance follows grpc://${leader.address} (read-only); write to the leader`;
      for (const attempt of [
        kv.write(at("alice", "a"), bytes("x")),
        kv.remove(at("alice", "a")),
        kv.txn({ checks: [], operations: [{ ...at("alice", "b"), kind: "write", value: bytes("x") }] }),
      ]) {
        const error = await errorOf(attempt);
        expect([error.code, error.message]).toEqual(["failed-precondition", refusal]);
        expect(error.message).not.toContain(tokenFile);
      }
      const [mutated] = await kv.mutate([{ ref: at("alice", "m"), write: bytes("x") }]);
      expect(mutated).toMatchObject({ code: "failed-precondition", message: refusal });
      // A Txn of checks alone changes nothing: answered.
      expect(await kv.txn({ checks: [{ ...at("alice", "a"), expect: "present" }], operations: [] })).toMatchObject({ succeeded: true });
      // Connect, as curl speaks it.
      const connect = await fetch(`http://${follower.running.listening["vss"] as string}/tierkv.v1.KVStoreService/Write`, {
        method: "POST",
        headers: { "content-type": "application/json", ...bearer },
        body: JSON.stringify({ primaryNamespace: "cfg", key: "c", value: "eA==" }),
      });
      expect(await connect.json()).toEqual({ code: "failed_precondition", message: refusal });
      // VSS: refused as the caller's own mistake (not retried by LDK Node), with the same message.
      expect((await refused(aliceOnFollower.put([["vk", "x", 1]]), 400, ErrorCode.INVALID_REQUEST_EXCEPTION)).serverMessage).toBe(refusal);
      expect((await refused(aliceOnFollower.delete("vk", 1), 400, ErrorCode.INVALID_REQUEST_EXCEPTION)).serverMessage).toBe(refusal);

      // Reads and Watch work, on the follower's own change log.
      expect(vssText((await aliceOnFollower.get("vk")).value)).toBe("vss value");
      expect(new TextDecoder().decode(await kv.read(at("alice", "a")))).toBe("from the leader");
      const abort = new AbortController();
      const watched = [];
      for await (const event of kv.watch({ start: 1n }, abort.signal)) {
        if (event.kind === "change") watched.push(`${event.change.kind} ${event.change.key}`);
        if (watched.length === 1) break;
      }
      expect(watched).toEqual(["put a"]);
    } finally {
      await kv.close();
    }

    // Its positions live in a store of the server's own: hidden from every listing and watch, refused by name.
    const replica = follower.client();
    const listed = await replica.listAllKeys({ allStores: true });
    expect(new Set(listed.keys.map((key) => key.storeId))).toEqual(new Set(["alice", "vss:alice:wallet"]));
    expect([...(await headsOf(replica)).keys()].sort()).toEqual(["alice", "vss:alice:wallet"]);
    expect((await errorOf(replica.read({ storeId: "_tierkv:follow", primaryNamespace: "", secondaryNamespace: "", key: "k" }))).code).toBe("permission-denied");

    // backup-status (admin) and the metrics say whom it follows and how far behind it is.
    const status = await runCli(["--server", follower.address, "backup-status"], undefined, { TIERKV_TOKEN: ops });
    expect(status.code, status.stderr).toBe(0);
    // The two changes were copied or tailed, depending on when the follower's first copy ran.
    expect(JSON.parse(status.stdout.toString()).follower).toEqual({
      leader: `grpc://${leader.address}`,
      state: "tailing",
      connected: true,
      lagChanges: 0,
      lagSeconds: 0,
      appliedChanges: expect.any(Number),
      fullCopies: 1,
      lastError: "",
    });
    const metrics = await (await fetch(`http://${follower.running.listening["metrics"] as string}/metrics`)).text();
    for (const line of ["tierkv_following 1", "tierkv_follower_connected 1", "tierkv_follower_lag_changes 0", "tierkv_follower_lag_seconds 0", "tierkv_follower_full_copies_total 1"]) {
      expect(metrics).toContain(line);
    }
  });

  it("may itself be followed: a follower of a follower ends equal to the first leader, across the middle one's crash", async () => {
    const dir = tempDir();
    const leader = await started(["--primary", `sqlite:${join(dir, "leader.db")}`]);
    const middle = await started(["--primary", `sqlite:${join(dir, "middle.db")}`, "--follow", `grpc://${leader.address}`]);
    const last = await started(["--primary", `sqlite:${join(dir, "last.db")}`, "--follow", `grpc://${middle.address}`]);
    const kv = leader.client();
    const round = async (n: number): Promise<void> => {
      await Promise.all(
        ["alice", "bob", "carol"].map(async (storeId) => {
          for (let i = 0; i < 20; i++) await kv.write(at(storeId, `k${i % 7}`), bytes(`${storeId} ${n} ${i}`));
          await kv.remove(at(storeId, "k3"));
          await kv.txn({ checks: [], operations: [{ ...at(storeId, "t1"), kind: "write", value: bytes(`t${n}`) }, { ...at(storeId, "k4"), kind: "remove" }] });
        }),
      );
    };
    await round(1);
    await expectSameContents(kv, last.client());
    await middle.stop("SIGKILL");
    await round(2);
    await middle.start();
    await round(3);
    await expectSameContents(kv, middle.client());
    await expectSameContents(kv, last.client());
    expect((await last.backupStatus()).follower).toMatchObject({ leader: `grpc://${middle.address}`, connected: true, fullCopies: 1n });
    // The last one copied once, at its first start; the middle one's crash cost it nothing but a reconnect.
    expect(last.logs.filter((line) => line.includes('"msg":"copying the leader in full"'))).toHaveLength(1);
  });

  it("refuses settings that cannot work, with exit code 2", async () => {
    const dir = tempDir();
    const cases: Array<[string[], RegExp]> = [
      [["--follow", `sqlite:${join(dir, "x.db")}`], /--follow .*expected grpc:\/\/HOST:PORT/],
      [["--follow", "grpc://127.0.0.1:1", "--backup", "memory:"], /--follow and --backup exclude each other/],
      [["--follow", "grpc://127.0.0.1:1?token_file=/nonexistent/token"], /--follow: token_file \/nonexistent\/token/],
      [["--follow", "grpc://127.0.0.1:1", "--primary", `fs:${dir}`], /--follow needs a sqlite:, postgres:\/\/ or memory: primary/],
      [["--follow", "grpc://127.0.0.1:1?ca=ca.pem"], /ca\/cert\/key need grpcs:\/\//],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(["serve", "--listen", "127.0.0.1:0", "--primary", "memory:", ...args]);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(message);
    }
  });
});
