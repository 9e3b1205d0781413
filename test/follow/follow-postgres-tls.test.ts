// Followers on PostgreSQL over TLS (contract §9.5, issue 21), with real `tierkv serve` processes:
// a leader serving TLS on a PostgreSQL primary, a follower on a second PostgreSQL database tailing
// it over grpcs:// (the test CA as `ca=`, a replicate token as `token_file=`), started under 16
// writers in two stores (its full copy runs while keys change), SIGKILLed and restarted mid-load,
// ends equal to its leader and refuses writes naming the grpcs:// leader; a follower given the wrong CA applies nothing, says why, and keeps running.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import type { KeyRef } from "../../src/store/types.js";
import { addTokenWithCli, writeTokenFile } from "../support/auth.js";
import { makeCertificates, type TestCertificates } from "../support/certs.js";
import { usePostgres } from "../support/postgres.js";
import { errorOf } from "../support/store-assertions.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { expectSameContents, Instance, waitFor } from "./follow-support.js";

const postgres = usePostgres();

const instances: Instance[] = [];
afterEach(async () => {
  for (const instance of instances.splice(0)) await instance.close();
  removeTempDirs();
});

const STORES = ["alice", "bob"];

/** A leader and what its followers need: the identities file's tokens, the CA, the token file. */
interface Leader {
  readonly instance: Instance;
  readonly certs: TestCertificates;
  readonly writeTokens: ReadonlyMap<string, string>;
  readonly tokenFile: string;
}

/** A leader serving TLS with `--auth tokens` on a fresh PostgreSQL database; the test reads it with the replicate token. */
async function startLeader(dir: string): Promise<Leader> {
  const certs = makeCertificates(dir);
  const tokens = join(dir, "identities.json");
  const writeTokens = new Map<string, string>();
  for (const store of STORES) writeTokens.set(store, await addTokenWithCli(tokens, store, ["write"]));
  const replicate = await addTokenWithCli(tokens, "replica", ["replicate"]);
  const instance = await Instance.create(
    ["--primary", await postgres().createDatabase(), "--auth", "tokens", "--tokens-file", tokens, "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey],
    replicate,
    certs.ca,
  );
  instances.push(instance);
  await instance.start();
  expect(instance.running.listening["tls"]).toBe(true);
  return { instance, certs, writeTokens, tokenFile: writeTokenFile(dir, "replicate.token", replicate) };
}

/** A follower on a fresh PostgreSQL database (no auth of its own: loopback) following `uri`; not started. */
async function follower(uri: string): Promise<Instance> {
  const instance = await Instance.create(["--primary", await postgres().createDatabase(), "--follow", uri]);
  instances.push(instance);
  return instance;
}

/** 16 writers, each on its own keys of one store plus a key all writers of its store share, until stopped. */
class Load {
  acked = 0;
  failed: unknown[] = [];
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(clientsOf: (store: string) => TierkvClient) {
    this.done = Promise.all(Array.from({ length: 16 }, (_, w) => this.writer(w, clientsOf(STORES[w % STORES.length]!)))).then(() => undefined);
  }

  private async writer(w: number, kv: TierkvClient): Promise<void> {
    // No storeId: the caller's own store, from its token.
    const at = (i: number): KeyRef => ({ primaryNamespace: "load", secondaryNamespace: `w${w}`, key: `k${i % 6}` });
    const hot: KeyRef = { primaryNamespace: "load", secondaryNamespace: "", key: "hot" };
    for (let n = 0; !this.stopped; n++) {
      const roll = (n * 7919 + w * 104729) % 100;
      try {
        if (roll < 50) await kv.write(at(n), Buffer.from(`w${w} n${n} `.repeat(1 + (roll % 30))));
        else if (roll < 70) await kv.remove(at(n));
        else if (roll < 85) {
          await kv.txn({ checks: [], operations: [
            { ...at(n), kind: "write", value: Buffer.from(`txn ${w} ${n}`) },
            { ...at(n + 1), kind: "remove" },
          ] });
        } else if (roll < 93) await kv.write(hot, Buffer.from(`hot w${w} n${n}`));
        else await kv.write(at(n), Buffer.alloc(8 * 1024, n % 256));
        this.acked++;
      } catch (error) {
        // The leader never restarts here: any failure is the test's to report.
        this.failed.push(error);
        return;
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

describe("a follower on PostgreSQL over grpcs://", () => {
  it("of a TLS leader on PostgreSQL, started under 16 writers and SIGKILLed mid-load, ends equal to it and refuses writes naming it", async () => {
    const dir = tempDir();
    const { instance: leader, certs, writeTokens, tokenFile } = await startLeader(dir);
    const leaderName = `grpcs://${leader.address}`;
    const replica = await follower(`${leaderName}?ca=${certs.ca}&token_file=${tokenFile}`);

    const writerClients = new Map(STORES.map((store) => [store, new TierkvClient({ ...leader.clientOptions, timeoutMs: 20_000, bearerToken: writeTokens.get(store)! })]));
    const load = new Load((store) => writerClients.get(store)!);
    const ackedBeyond = async (count: number): Promise<void> => {
      const mark = load.acked;
      await waitFor(`${count} more acknowledged mutations (${load.failed.length} failed)`, () => load.acked >= mark + count || load.failed.length > 0, 20_000);
    };
    try {
      // The follower starts mid-load: its full copy reads keys that change meanwhile, and the
      // changes it then tails from the heads it noted may take a copied key back to an older
      // version (exact writes on PostgreSQL) before its latest.
      await ackedBeyond(150);
      await replica.start();
      await waitFor("the follower to tail its leader", async () => (await replica.backupStatus()).follower?.connected === true, 20_000);
      await ackedBeyond(150);
      // A crash mid-load: a transaction it was applying is lost whole, with the positions it carried.
      await replica.stop("SIGKILL");
      await ackedBeyond(150);
      await replica.start();
      await waitFor("the restarted follower to tail again", async () => (await replica.backupStatus()).follower?.connected === true, 20_000);
      await ackedBeyond(100);
    } finally {
      await load.stop();
      for (const client of writerClients.values()) await client.close();
    }
    expect(load.failed).toEqual([]);

    const contents = await expectSameContents(leader.client(), replica.client(), 30_000);
    expect([...contents.keys()].sort()).toEqual(STORES);
    // Only the first start copied the leader: the restart resumed from the positions in PostgreSQL.
    const copies = replica.logs.filter((line) => line.includes('"msg":"copying the leader in full"'));
    expect(copies).toHaveLength(1);
    expect(copies[0]).toContain("no full copy of the leader completed yet");
    const copied = replica.logs.filter((line) => line.includes('"msg":"copied the leader in full;'));
    expect(copied).toHaveLength(1);
    expect((JSON.parse(copied[0]!) as { copied: number }).copied).toBeGreaterThan(0);
    expect(replica.logs.filter((line) => line.includes('"msg":"following the leader"'))).toHaveLength(2);
    // The last progress message may predate the last changes: lag 0 is waited for, briefly.
    await waitFor("the follower's lag to be 0", async () => (await replica.backupStatus()).follower?.lagChanges === 0n, 5_000);
    const status = (await replica.backupStatus()).follower!;
    expect(status).toMatchObject({ leader: leaderName, state: "tailing", connected: true, lagChanges: 0n, lagSeconds: 0, fullCopies: 0n, lastError: "" });
    expect(status.appliedChanges).toBeGreaterThan(0n);

    // Writes are refused naming the leader as scheme://HOST:PORT: neither the CA's path nor the token file's.
    const kv = replica.client();
    const refusal = `this instance follows ${leaderName} (read-only); write to the leader`;
    const ref: KeyRef = { primaryNamespace: "load", secondaryNamespace: "w0", key: "k0" };
    for (const attempt of [
      kv.write(ref, Buffer.from("x")),
      kv.remove(ref),
      kv.txn({ checks: [], operations: [{ ...ref, kind: "write", value: Buffer.from("x") }] }),
    ]) {
      const error = await errorOf(attempt);
      expect([error.code, error.message]).toEqual(["failed-precondition", refusal]);
    }
    console.log(`follower on PostgreSQL over grpcs://: ${load.acked} mutations acknowledged, ${status.appliedChanges} applied after the restart`);
  });

  it("given the wrong CA applies nothing, says in backup-status and its logs that the leader's certificate is not trusted, and keeps running", async () => {
    const dir = tempDir();
    const { instance: leader, writeTokens, tokenFile } = await startLeader(dir);
    const alice = new TierkvClient({ ...leader.clientOptions, bearerToken: writeTokens.get("alice")! });
    try {
      await alice.write({ primaryNamespace: "cfg", secondaryNamespace: "", key: "a" }, Buffer.from("not for this follower"));
    } finally {
      await alice.close();
    }
    // Another CA: the leader's certificate is not signed by it.
    const other = makeCertificates(tempDir());
    const leaderName = `grpcs://${leader.address}`;
    const database = await postgres().createDatabase();
    const replica = await Instance.create(["--primary", database, "--follow", `${leaderName}?ca=${other.ca}&token_file=${tokenFile}`]);
    instances.push(replica);
    await replica.start();

    const failures = (): string[] => replica.logs.filter((line) => line.includes('"msg":"following the leader failed; trying again"'));
    // It tries again with backoff (100 ms, doubling): a few attempts come within seconds.
    await waitFor("the follower to fail to reach its leader three times", () => failures().length >= 3, 20_000);
    const status = (await replica.backupStatus()).follower!;
    expect(status).toMatchObject({ leader: leaderName, state: "connecting", connected: false, appliedChanges: 0n, fullCopies: 0n });
    // The cause an operator can act on: the leader's address and the certificate check that failed.
    expect(status.lastError).toContain(leader.address);
    expect(status.lastError).toMatch(/certificate/i);
    for (const line of failures()) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      expect(entry).toMatchObject({ level: 40, leader: leaderName, err: status.lastError });
    }
    expect(replica.logs.filter((line) => line.includes('"msg":"following the leader"'))).toEqual([]);
    // Nothing applied: no key to read, and no row in its database (not even a position or copy record).
    expect((await replica.client().listAllKeys({ allStores: true })).keys).toEqual([]);
    expect(await postgres().admin<{ count: string }>("SELECT count(*) FROM tierkv_kv", [], database)).toEqual([{ count: "0" }]);
    // No crash: it still serves, and stops cleanly (exit 0).
    expect(replica.running.child.exitCode).toBeNull();
    await replica.stop("SIGTERM");
  });
});
