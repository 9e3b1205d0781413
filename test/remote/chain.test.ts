// Chained instances A → B → C (real processes, each with its own sqlite primary): mutations made
// through A reach C's database file, in the order A issued them even over a slow link to B.
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import type { KeyRef } from "../../src/store/types.js";
import { startDelayProxy, type DelayProxy } from "../support/delay-proxy.js";
import { spawnServer, type ServerProcess } from "../support/process.js";
import { storedValues } from "../support/sqlite-rows.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const running: Array<ServerProcess | DelayProxy | TierkvClient> = [];
afterEach(async () => {
  for (const thing of running.splice(0).reverse()) {
    if ("kill" in thing) await thing.kill();
    else await thing.close();
  }
  removeTempDirs();
});

/** Starts C, then B backing up to C, then A backing up to B (optionally through a slow link). */
async function startChain(slowLinkToB?: [number, number]) {
  const dir = tempDir();
  const db = { a: join(dir, "a.db"), b: join(dir, "b.db"), c: join(dir, "c.db") };
  const c = await spawnServer(["--primary", `sqlite:${db.c}`]);
  running.push(c);
  const b = await spawnServer(["--primary", `sqlite:${db.b}`, "--backup", `grpc://${c.address}`]);
  running.push(b);
  let bAddress = b.address;
  if (slowLinkToB) {
    const proxy = await startDelayProxy(b.address, ...slowLinkToB);
    running.push(proxy);
    bAddress = proxy.address;
  }
  const a = await spawnServer(["--primary", `sqlite:${db.a}`, "--backup", `grpc://${bAddress}`]);
  running.push(a);
  const client = new TierkvClient({ address: a.address });
  running.push(client);
  return { a, b, c, db, client };
}

const key = (i: number): KeyRef => ({ primaryNamespace: "monitors", secondaryNamespace: "", key: `chan_${i}` });

it("writes and removes through A arrive in C's database file", async () => {
  const { a, b, c, db, client } = await startChain();
  for (let i = 0; i < 20; i++) await client.write(key(i), Buffer.from(`value ${i}`));
  for (let i = 0; i < 20; i += 4) await client.remove(key(i));
  await client.remove(key(1), { lazy: true });
  for (const server of [a, b, c]) expect(await server.kill()).toEqual({ code: 0, signal: null });

  const expected = new Map<string, string>();
  for (let i = 0; i < 20; i++) if (i % 4 !== 0 && i !== 1) expected.set(`monitors//chan_${i}`, `value ${i}`);
  for (const path of [db.a, db.b, db.c]) expect(storedValues(path)).toEqual(expected);
});

it("50 concurrent writes to one key through A, with a slow link to B, leave the last value in A, B and C", async () => {
  const { a, b, c, db, client } = await startChain([1, 20]);
  await client.write(key(0), Buffer.from("warm-up")); // connects, so the burst leaves in order
  await Promise.all(Array.from({ length: 50 }, (_, i) => client.write(key(0), Buffer.from(`v${i}`))));
  for (const server of [a, b, c]) await server.kill();
  for (const path of [db.a, db.b, db.c]) expect(storedValues(path).get("monitors//chan_0")).toBe("v49");
});
