// Resync: a primary populated alone gets an empty backup instance; `tierkv resync` (a real CLI
// process) runs while two clients keep writing; afterwards both hold identical contents.
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import type { KeyRef } from "../../src/store/types.js";
import { runCli, spawnServer } from "../support/process.js";
import { storedRows } from "../support/sqlite-rows.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
  removeTempDirs();
});

const KEYS = 5000;
const key = (i: number): KeyRef => ({
  primaryNamespace: i % 2 === 0 ? "monitors" : "",
  secondaryNamespace: "",
  key: `k${i}`,
});

/** Writes (and sometimes removes) random keys until `stop()` is true; bounded in count. */
async function keepWriting(client: TierkvClient, writer: number, stop: () => boolean): Promise<number> {
  let done = 0;
  for (; done < 20_000 && !stop(); done++) {
    const i = Math.floor(Math.random() * (KEYS + 500));
    if (Math.random() < 0.2) await client.remove(key(i));
    else await client.write(key(i), Buffer.from(`writer ${writer} op ${done}`));
  }
  return done;
}

it(`resync copies ${KEYS} keys to an empty backup while two clients keep writing`, async () => {
  const dir = tempDir();
  const db = { a: join(dir, "a.db"), b: join(dir, "b.db") };

  const alone = await spawnServer(["--primary", `sqlite:${db.a}`]);
  const seed = new TierkvClient({ address: alone.address });
  for (let start = 0; start < KEYS; start += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, j) => seed.write(key(start + j), Buffer.from(`seed ${start + j}`))));
  }
  await seed.close();
  expect(await alone.kill()).toEqual({ code: 0, signal: null });

  const b = await spawnServer(["--primary", `sqlite:${db.b}`]);
  cleanup.push(() => b.kill());
  const a = await spawnServer(["--primary", `sqlite:${db.a}`, "--backup", `grpc://${b.address}`]);
  cleanup.push(() => a.kill());
  const writers = [new TierkvClient({ address: a.address }), new TierkvClient({ address: a.address })];
  cleanup.push(() => Promise.all(writers.map((w) => w.close())));

  let resyncDone = false;
  const writing = writers.map((client, n) => keepWriting(client, n, () => resyncDone));
  const resync = await runCli(["--server", a.address, "resync"]);
  resyncDone = true;
  const writes = await Promise.all(writing);

  expect(resync.code).toBe(0);
  // Not a terminal: progress comes as periodic plain lines on stderr.
  for (const line of resync.stderr.split("\n").filter((l) => l !== "")) {
    expect(line).toMatch(/^resync: \d+\/\d+ primary keys, scanned \d+, copied \d+, removed \d+, unchanged \d+$/);
  }
  expect(resync.stdout.toString()).toMatch(/^resync done: scanned \d+, copied \d+, removed \d+, unchanged \d+\n$/);
  const copied = Number(/copied (\d+)/.exec(resync.stdout.toString())![1]);
  expect(copied).toBeGreaterThan(KEYS / 2); // most seeds were copied (writers touched some first)
  expect(writes.every((n) => n > 0)).toBe(true); // writes really went on during the resync

  expect(await a.kill()).toEqual({ code: 0, signal: null });
  expect(await b.kill()).toEqual({ code: 0, signal: null });
  const rowsA = storedRows(db.a);
  expect(rowsA.length).toBeGreaterThan(KEYS / 2);
  expect(storedRows(db.b)).toEqual(rowsA);
});

it("resync on a server without a backup fails with a clear message", async () => {
  const a = await spawnServer(["--primary", "memory:"]);
  cleanup.push(() => a.kill());
  const result = await runCli(["--server", a.address, "resync"]);
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(/^tierkv: resync needs a backup tier.*\n$/);
});
