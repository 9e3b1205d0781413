// Full cycle over gRPC: a real `tierkv serve` process with sqlite primary and sqlite backup takes
// 1,000 writes with random removes; afterwards both database files hold identical contents.
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { TierkvClient } from "../../src/client/client.js";
import type { KeyRef } from "../../src/store/types.js";
import { spawnServer } from "../support/process.js";
import { storedRows, storedValues } from "../support/sqlite-rows.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

afterAll(removeTempDirs);

const KEYS = 1000;
const CONCURRENCY = 16;

it(`primary and backup hold identical contents after ${KEYS} writes with random removes`, async () => {
  const dir = tempDir();
  const [primary, backup] = [join(dir, "primary.db"), join(dir, "backup.db")];
  const server = await spawnServer(["--primary", `sqlite:${primary}`, "--backup", `sqlite:${backup}`]);
  const client = new TierkvClient({ address: server.address });
  const expected = new Map<string, string>();
  try {
    const refs: KeyRef[] = Array.from({ length: KEYS }, (_, i) => ({
      primaryNamespace: ["monitors", "payments", ""][i % 3]!,
      secondaryNamespace: i % 3 === 0 ? "updates" : "",
      key: `key_${i}`,
    }));
    for (let start = 0; start < KEYS; start += CONCURRENCY) {
      await Promise.all(
        refs.slice(start, start + CONCURRENCY).map(async (ref, offset) => {
          const value = `value-${start + offset}`;
          await client.write(ref, Buffer.from(value));
          expected.set(`${ref.primaryNamespace}/${ref.secondaryNamespace}/${ref.key}`, value);
          if (Math.random() < 0.3) {
            await client.remove(ref, { lazy: Math.random() < 0.5 });
            expected.delete(`${ref.primaryNamespace}/${ref.secondaryNamespace}/${ref.key}`);
          }
        }),
      );
    }
  } finally {
    await client.close();
    expect(await server.kill("SIGTERM")).toEqual({ code: 0, signal: null });
  }

  expect(storedRows(backup)).toEqual(storedRows(primary));
  expect(storedValues(primary)).toEqual(expected);
});
