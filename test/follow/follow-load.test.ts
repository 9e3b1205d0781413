// A follower under load (contract §9.5, issue 21): 64 writers on the leader (SQLite, four tenants,
// writes, removes and Txns), the follower SIGKILLed and restarted twice, the leader stopped
// (SIGTERM) and started again on the same file and port. At the end the follower's stores equal
// the leader's: keys, values, versions, revisions and a digest per store; and every restart
// resumed from the positions it had applied (no full copy after the first).
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import type { KeyRef } from "../../src/store/types.js";
import { addTokenWithCli, writeTokenFile } from "../support/auth.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { digests, expectSameContents, Instance, waitFor } from "./follow-support.js";

const instances: Instance[] = [];
afterEach(async () => {
  for (const instance of instances.splice(0)) await instance.close();
  removeTempDirs();
});

const STORES = ["alice", "bob", "carol", "dave"];

/** 64 writers, each on its own keys of one store, until stopped; failures (the leader restarting) are counted and retried. */
class Load {
  acked = 0;
  failed = 0;
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(clientsOf: (store: string) => TierkvClient) {
    this.done = Promise.all(Array.from({ length: 64 }, (_, w) => this.writer(w, clientsOf(STORES[w % STORES.length]!)))).then(() => undefined);
  }

  private async writer(w: number, kv: TierkvClient): Promise<void> {
    const at = (i: number): KeyRef => ({ primaryNamespace: "load", secondaryNamespace: `w${w}`, key: `k${i % 8}` });
    for (let n = 0; !this.stopped; n++) {
      const roll = (n * 7919 + w * 104729) % 100;
      try {
        if (roll < 60) await kv.write(at(n), Buffer.from(`w${w} n${n} `.repeat(1 + (roll % 40))));
        else if (roll < 75) await kv.remove(at(n));
        else if (roll < 90) {
          await kv.txn({ checks: [], operations: [
            { ...at(n), kind: "write", value: Buffer.from(`txn ${n} a`) },
            { ...at(n + 1), kind: "write", value: Buffer.from(`txn ${n} b`) },
          ] });
        } else await kv.write(at(n), Buffer.alloc(16 * 1024, n % 256));
        this.acked++;
      } catch {
        this.failed++;
        // The leader is restarting: give it a moment instead of spinning.
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

it("a follower under 64 writers, SIGKILLed and restarted twice, its leader restarted once, ends equal to the leader", { timeout: 240_000 }, async () => {
  const dir = tempDir();
  const tokens = join(dir, "identities.json");
  const writeTokens = new Map<string, string>();
  for (const store of STORES) writeTokens.set(store, await addTokenWithCli(tokens, store, ["write"]));
  const replicate = await addTokenWithCli(tokens, "replica", ["replicate"]);
  const tokenFile = writeTokenFile(dir, "replicate.token", replicate);

  const leader = await Instance.create(["--primary", `sqlite:${join(dir, "leader.db")}`, "--auth", "tokens", "--tokens-file", tokens], replicate);
  instances.push(leader);
  await leader.start();
  const follower = await Instance.create(["--primary", `sqlite:${join(dir, "follower.db")}`, "--follow", `grpc://${leader.address}?token_file=${tokenFile}`]);
  instances.push(follower);
  await follower.start();
  await waitFor("the follower to tail its leader", async () => (await follower.backupStatus()).follower?.connected === true);

  // Writers reach the leader as their stores' owners; the channels reconnect across its restart.
  const writerClients = new Map(STORES.map((store) => [store, new TierkvClient({ address: leader.address, timeoutMs: 20_000, bearerToken: writeTokens.get(store)! })]));
  const load = new Load((store) => writerClients.get(store)!);
  const ackedBeyond = async (count: number): Promise<void> => {
    const mark = load.acked;
    await waitFor(`${count} more acknowledged mutations`, () => load.acked >= mark + count, 90_000);
  };
  // The follower's lag, sampled while it tails under the load before the first kill (steady state).
  const lagChanges: number[] = [];
  const lagSeconds: number[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const status = (await follower.backupStatus()).follower!;
      lagChanges.push(Number(status.lagChanges));
      lagSeconds.push(status.lagSeconds);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();

  try {
    const appliedAtLeast = (count: number): Promise<void> =>
      waitFor(`the follower to apply ${count} changes`, async () => Number((await follower.backupStatus()).follower?.appliedChanges ?? 0n) >= count, 90_000);
    await ackedBeyond(1_500);
    sampling = false;
    await sampler;
    await follower.stop("SIGKILL");
    await ackedBeyond(600);
    await follower.start();
    await appliedAtLeast(400);
    await follower.stop("SIGKILL");
    await ackedBeyond(600);
    await follower.start();
    await appliedAtLeast(400);
    // The leader stops cleanly and comes back on the same file and port; the follower reconnects.
    await leader.stop("SIGTERM");
    await leader.start();
    await ackedBeyond(600);
  } finally {
    sampling = false;
    await load.stop();
  }
  const started = Date.now();
  const contents = await expectSameContents(leader.client(), follower.client(), 90_000);
  const catchUpMs = Date.now() - started;
  for (const client of writerClients.values()) await client.close();

  // Every store took part, and holds keys.
  expect([...contents.keys()].sort()).toEqual(STORES);
  expect(digests(contents).size).toBe(STORES.length);
  // Only the very first start copied the leader: both restarts and the leader's restart resumed from positions.
  const copies = follower.logs.filter((line) => line.includes('"msg":"copying the leader in full"'));
  expect(copies).toHaveLength(1);
  expect(copies[0]).toContain("no full copy of the leader completed yet");
  expect(follower.logs.filter((line) => line.includes('"msg":"following the leader"')).length).toBeGreaterThanOrEqual(4);
  const status = (await follower.backupStatus()).follower!;
  expect(status).toMatchObject({ state: "tailing", connected: true, lagChanges: 0n, lagSeconds: 0, fullCopies: 0n, leader: `grpc://${leader.address}` });
  expect(lagChanges.length).toBeGreaterThan(0);
  console.log(
    `follower under 64 writers: ${load.acked} mutations acknowledged (${load.failed} failed during restarts); ` +
      `steady lag before the first kill p50/p99/max ${percentile(lagChanges, 50)}/${percentile(lagChanges, 99)}/${Math.max(...lagChanges)} changes, ` +
      `${percentile(lagSeconds, 50).toFixed(3)}/${percentile(lagSeconds, 99).toFixed(3)}/${Math.max(...lagSeconds).toFixed(3)} s ` +
      `(${lagChanges.length} samples); caught up ${catchUpMs} ms after the load stopped`,
  );
});
