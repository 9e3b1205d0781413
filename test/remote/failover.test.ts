// A backup instance that dies (SIGKILL) and comes back: writes through A fail with UNAVAILABLE
// within their deadline while A stays up and healthy, then succeed again; nothing acknowledged
// is missing from either tier.
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import { StoreError } from "../../src/store/errors.js";
import type { KeyRef } from "../../src/store/types.js";
import { healthStatus } from "../support/health.js";
import { spawnServer, type ServerProcess } from "../support/process.js";
import { storedValues } from "../support/sqlite-rows.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
  removeTempDirs();
});

const key = (i: number): KeyRef => ({ primaryNamespace: "payments", secondaryNamespace: "", key: `p${i}` });
const DEADLINE_MS = 3_000;

it("a killed backup fails writes with UNAVAILABLE in time, and a restarted one takes writes again", async () => {
  const dir = tempDir();
  const db = { a: join(dir, "a.db"), b: join(dir, "b.db") };
  let b: ServerProcess = await spawnServer(["--primary", `sqlite:${db.b}`]);
  const a = await spawnServer([
    "--primary", `sqlite:${db.a}`,
    "--backup", `grpc://${b.address}`,
    "--retry-max-attempts", "3",
  ]);
  cleanup.push(() => a.kill());
  const client = new TierkvClient({ address: a.address });
  cleanup.push(() => client.close());
  const acknowledged = new Map<string, string>();
  const write = async (i: number, value: string): Promise<void> => {
    await client.write(key(i), Buffer.from(value), { deadline: Date.now() + DEADLINE_MS });
    acknowledged.set(`payments//p${i}`, value);
  };

  for (let i = 0; i < 20; i++) await write(i, `before ${i}`);

  await b.kill("SIGKILL");
  for (let i = 20; i < 25; i++) {
    const started = Date.now();
    const error = await write(i, `while down ${i}`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe("unavailable");
    expect(Date.now() - started).toBeLessThan(DEADLINE_MS + 1_000);
  }
  expect(await healthStatus(a.address)).toBe("SERVING");
  expect(Buffer.from(await client.read(key(3))).toString()).toBe("before 3");

  b = await spawnServer(["--listen", b.address, "--primary", `sqlite:${db.b}`]);
  cleanup.push(() => b.kill());
  // The link reconnects within its backoff (2 s at most): keep trying, bounded.
  let recovered = false;
  for (let attempt = 0; attempt < 50 && !recovered; attempt++) {
    recovered = await write(100, "after restart").then(
      () => true,
      () => new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 200)),
    );
  }
  expect(recovered).toBe(true);
  for (let i = 25; i < 45; i++) await write(i, `after ${i}`);

  expect(await a.kill()).toEqual({ code: 0, signal: null });
  expect(await b.kill()).toEqual({ code: 0, signal: null });
  for (const path of [db.a, db.b]) {
    const stored = storedValues(path);
    for (const [k, value] of acknowledged) expect(stored.get(k), `${k} in ${path}`).toBe(value);
  }
});
