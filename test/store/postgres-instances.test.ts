// Several tierkv instances on one PostgreSQL (contract §5): real `tierkv serve` processes, 16
// clients writing the same keys through both with increasing versions (one writer per key),
// conditional transactions racing on one compare, and a kill -9 of one instance mid-load.
import { afterEach, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import type { KeyRef } from "../../src/store/types.js";
import { usePostgres } from "../support/postgres.js";
import { spawnServer, type ServerProcess } from "../support/process.js";

const postgres = usePostgres();
const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

const KEYS = 16;
const key = (i: number): KeyRef => ({ primaryNamespace: "monitors", secondaryNamespace: "", key: `k${i}` });

async function instance(uri: string): Promise<{ server: ServerProcess; client: TierkvClient }> {
  const server = await spawnServer(["--primary", uri]);
  const client = new TierkvClient({ address: server.address, timeoutMs: 5_000 });
  cleanup.push(async () => {
    await client.close();
    await server.kill("SIGKILL");
  });
  return { server, client };
}

it("applies every key's highest version through two instances, refuses double compares, and survives a kill -9 of one", async () => {
  const uri = await postgres().createDatabase();
  const [one, two] = [await instance(uri), await instance(uri)];
  const base = BigInt(Date.now()) << 20n;
  // Writer i owns key i and writes versions base+1.. through both instances alternately.
  const acknowledged = new Map<number, bigint>();
  let killed = false;
  const writers = Array.from({ length: KEYS }, async (_, i) => {
    for (let n = 1; n <= 40; n++) {
      const via = n % 2 === 0 || killed ? two : one;
      const version = base + BigInt(n);
      try {
        await via.client.write(key(i), Buffer.from(`v${n}`), { version });
        acknowledged.set(i, version);
      } catch (error) {
        // Only calls through the killed instance may fail.
        expect(via).toBe(one);
        expect(killed).toBe(true);
      }
    }
  });
  setTimeout(() => {
    killed = true;
    void one.server.kill("SIGKILL");
  }, 300);
  await Promise.all(writers);
  expect(killed).toBe(true);

  for (let i = 0; i < KEYS; i++) {
    const stored = await two.client.readVersioned(key(i));
    // Nothing acknowledged is lost: the stored version is the highest one acknowledged (or a
    // higher one whose acknowledgement the kill swallowed).
    expect(stored.version).toBeGreaterThanOrEqual(acknowledged.get(i)!);
    expect(Buffer.from(stored.value).toString()).toBe(`v${stored.version - base}`);
  }

  // Conditional batches from both instances on one compare: exactly one succeeds.
  const three = await instance(uri);
  const counter = key(999);
  await two.client.write(counter, Buffer.from("0"));
  const { revision } = await two.client.readVersioned(counter);
  const attempts = await Promise.all(
    [two, three, two, three].map((via, n) =>
      via.client.txn({ checks: [{ ...counter, expect: revision }], operations: [{ ...counter, kind: "write", value: Buffer.from(`by ${n}`) }] }),
    ),
  );
  expect(attempts.filter((result) => result.succeeded)).toHaveLength(1);
  expect((await three.client.readVersioned(counter)).revision).toBe(revision + 1n);
});
