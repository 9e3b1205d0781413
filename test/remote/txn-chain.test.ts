// Atomic transactions through a chain (contract §2 Txn, §4): conditional increments from 16
// clients through A never lose an update, and A's backup B (another tierkv process) ends equal to
// A — for gRPC Txns and for VSS PutObjects on A's HTTP listener alike.
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterEach, expect, it } from "vitest";
import { PutObjectRequestSchema } from "../../gen/vss/v1/vss_pb.js";
import { TierkvClient } from "../../src/client/client.js";
import { scanAllKeys } from "../../src/store/scan.js";
import type { KeyRef } from "../../src/store/types.js";
import { spawnServer } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
  removeTempDirs();
});

const COUNTER: KeyRef = { primaryNamespace: "counters", secondaryNamespace: "", key: "c" };
const CLIENTS = 16;
const INCREMENTS = 10;

it("keeps every conditional increment through A → B, and B equals A afterwards", async () => {
  const dir = tempDir();
  const b = await spawnServer(["--primary", `sqlite:${join(dir, "b.db")}`]);
  cleanup.push(() => b.kill());
  const a = await spawnServer(["--primary", `sqlite:${join(dir, "a.db")}`, "--backup", `grpc://${b.address}`, "--vss-listen", "127.0.0.1:0"]);
  cleanup.push(() => a.kill());
  const clients = Array.from({ length: CLIENTS }, () => new TierkvClient({ address: a.address }));
  cleanup.push(() => Promise.all(clients.map((c) => c.close())));

  await clients[0]!.write(COUNTER, Buffer.from("0"));
  let succeeded = 0;
  await Promise.all(
    clients.map(async (client) => {
      for (let done = 0; done < INCREMENTS; ) {
        const current = await client.readVersioned(COUNTER);
        const next = Buffer.from(String(Number(Buffer.from(current.value).toString()) + 1));
        const result = await client.txn({
          checks: [{ ...COUNTER, expect: current.revision }],
          operations: [{ ...COUNTER, kind: "write", value: next }],
        });
        if (result.succeeded) {
          succeeded++;
          done++;
        }
      }
    }),
  );
  expect(succeeded).toBe(CLIENTS * INCREMENTS);
  expect(Buffer.from(await clients[0]!.read(COUNTER)).toString()).toBe(String(CLIENTS * INCREMENTS));

  // VSS traffic on A's HTTP listener, a multi-object transaction included.
  const vss = `http://${a.listening["vss"] as string}/vss/putObjects`;
  for (let i = 0; i < 5; i++) {
    const body = toBinary(
      PutObjectRequestSchema,
      create(PutObjectRequestSchema, {
        storeId: "wallet",
        transactionItems: [
          { key: `k${i}`, version: -1n, value: Buffer.from(`v${i}`) },
          { key: `k${i}+/=`, version: 0n, value: Buffer.from(`w${i}`) },
        ],
      }),
    );
    const response = await fetch(vss, { method: "POST", headers: { "content-type": "application/octet-stream" }, body });
    expect(response.status).toBe(200);
  }

  // B holds exactly A's keys, versions, revisions and values, in every store.
  const viaB = new TierkvClient({ address: b.address });
  cleanup.push(() => viaB.close());
  const keysA: unknown[] = [];
  const keysB: unknown[] = [];
  for await (const key of scanAllKeys(clients[0]!, { allStores: true })) keysA.push({ ...key, value: Buffer.from(await clients[0]!.read(key)).toString() });
  for await (const key of scanAllKeys(viaB, { allStores: true })) keysB.push({ ...key, value: Buffer.from(await viaB.read(key)).toString() });
  expect(keysA.length).toBe(1 + 10);
  expect(keysB).toEqual(keysA);
});
