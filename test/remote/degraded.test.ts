// Degraded backup policy: with the backup down, writes are acknowledged from the primary and the
// keys are owed durably (they survive a restart of A); when the backup returns, owed keys are
// replayed until both tiers are identical and the backlog metric is back to 0.
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { TierkvAdminClient } from "../../src/client/admin-client.js";
import { TierkvClient } from "../../src/client/client.js";
import type { KeyRef } from "../../src/store/types.js";
import { spawnServer, type ServerProcess } from "../support/process.js";
import { storedRows } from "../support/sqlite-rows.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
  removeTempDirs();
});

const WRITES = 500;
const key = (i: number): KeyRef => ({ primaryNamespace: "monitors", secondaryNamespace: "updates", key: `u${i}` });

async function owedKeys(address: string): Promise<number> {
  const admin = new TierkvAdminClient({ address });
  try {
    return Number((await admin.backupStatus()).owedKeys);
  } finally {
    admin.close();
  }
}

async function backlogMetric(server: ServerProcess): Promise<number> {
  const response = await fetch(`http://${server.listening["metrics"] as string}/metrics`);
  const line = (await response.text()).split("\n").find((l) => l.startsWith("tierkv_backup_owed_keys "));
  return Number(line!.split(" ")[1]);
}

it(`acknowledges ${WRITES} writes with the backup down, keeps the debt across a restart, and repays it`, async () => {
  const dir = tempDir();
  const db = { a: join(dir, "a.db"), b: join(dir, "b.db") };
  // Learn a free port for B, then take B down: the backup is unreachable from the start.
  const firstB = await spawnServer(["--primary", `sqlite:${db.b}`]);
  const bAddress = firstB.address;
  await firstB.kill();

  const startA = () =>
    spawnServer([
      "--primary", `sqlite:${db.a}`,
      "--backup", `grpc://${bAddress}`,
      "--backup-policy", "degraded",
      "--retry-max-attempts", "2",
      "--metrics-listen", "127.0.0.1:0",
    ]);
  let a = await startA();
  const client = new TierkvClient({ address: a.address });
  for (let start = 0; start < WRITES; start += 25) {
    await Promise.all(Array.from({ length: 25 }, (_, j) => client.write(key(start + j), Buffer.from(`v${start + j}`))));
  }
  await client.remove(key(0));
  await client.close();
  expect(await owedKeys(a.address)).toBe(WRITES);
  expect(await backlogMetric(a)).toBe(WRITES);

  expect(await a.kill()).toEqual({ code: 0, signal: null });
  a = await startA();
  cleanup.push(() => a.kill());
  expect(await owedKeys(a.address)).toBe(WRITES);

  const b = await spawnServer(["--listen", bAddress, "--primary", `sqlite:${db.b}`]);
  cleanup.push(() => b.kill());
  let backlog = WRITES;
  for (let polls = 0; polls < 150 && backlog > 0; polls++) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    backlog = await backlogMetric(a);
  }
  expect(backlog).toBe(0);
  expect(await owedKeys(a.address)).toBe(0);

  expect(await a.kill()).toEqual({ code: 0, signal: null });
  expect(await b.kill()).toEqual({ code: 0, signal: null });
  const rowsA = storedRows(db.a);
  expect(rowsA).toHaveLength(WRITES - 1);
  expect(storedRows(db.b)).toEqual(rowsA);
});

it("refuses the degraded policy without a backup, naming the setting", async () => {
  const error = await spawnServer(["--primary", "memory:", "--backup-policy", "degraded"]).then(
    () => undefined,
    (e: Error) => e,
  );
  expect(error?.message).toContain("--backup-policy degraded needs --backup");
});
