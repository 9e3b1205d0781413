// Healing after an unclean stop (issue 22, contract §4.13): A (sqlite primary, the default
// required policy) chains to B and is SIGKILLed under 16 writers again and again, then restarted
// without `tierkv resync`. After each restart A reports the unclean stop and heals in the
// background; once it reports healed (and owes nothing), B equals A and no acknowledged write
// is missing from A. A clean stop leaves a marker: the next start finds it and does not heal.
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { TierkvAdminClient } from "../../src/client/admin-client.js";
import { TierkvClient } from "../../src/client/client.js";
import { storedRows } from "../support/sqlite-rows.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { between, Instance, sleep } from "./support/harness.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  removeTempDirs();
});

const KILLS = 10;
const WRITERS = 16;
const KEYS_PER_WRITER = 8;

interface Status {
  lastStopClean: boolean;
  healing: boolean;
  heals: number;
  owedKeys: number;
}

async function status(address: string): Promise<Status> {
  const admin = new TierkvAdminClient({ address, timeoutMs: 5_000 });
  try {
    const s = await admin.backupStatus();
    return { lastStopClean: s.lastStopClean, healing: s.healing, heals: Number(s.heals), owedKeys: Number(s.owedKeys) };
  } finally {
    admin.close();
  }
}

/** Waits until A reports healed and owes nothing; returns how long it took. */
async function waitHealed(address: string): Promise<number> {
  const started = Date.now();
  for (;;) {
    const s = await status(address).catch(() => undefined);
    if (s !== undefined && !s.healing && s.owedKeys === 0) return Date.now() - started;
    if (Date.now() - started > 20_000) throw new Error(`not healed after 20 s: ${JSON.stringify(s)}`);
    await sleep(50);
  }
}

const keyName = (writer: number, key: number): string => `w${writer}/k${key}`;

it(`heals after each of ${KILLS} SIGKILLs of the primary's server: the tiers are equal and nothing acknowledged is lost`, async () => {
  const started = Date.now();
  const dir = tempDir("tierkv-heal-");
  const files = { a: join(dir, "a.db"), b: join(dir, "b.db") };
  const b = new Instance("B", () => ["--primary", `sqlite:${files.b}`]);
  cleanup.push(() => b.destroy());
  await b.start();
  const a = new Instance("A", () => ["--primary", `sqlite:${files.a}`, "--backup", `grpc://${b.address}`]);
  cleanup.push(() => a.destroy());

  // Per key: the last value acknowledged, and the value in flight (unacknowledged) when A died.
  const acknowledged = new Map<string, string>();
  const inFlight = new Map<string, string>();
  let counter = 0;
  let writes = 0;
  const healedMs: number[] = [];
  const warnings = new Map<string, number>();
  for (let round = 0; round <= KILLS; round++) {
    await a.start();
    const s = await status(a.address);
    expect(s.lastStopClean, `round ${round}`).toBe(round === 0);
    expect(s.heals).toBe(round === 0 ? 0 : 1);
    healedMs.push(await waitHealed(a.address));
    for (const line of a.logs()) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if ((entry["level"] as number) >= 40) warnings.set(String(entry["msg"]), (warnings.get(String(entry["msg"])) ?? 0) + 1);
    }

    // Healed: B equals A, and A holds every acknowledged write (or the one in flight after it).
    const rowsA = storedRows(files.a);
    expect(storedRows(files.b), `round ${round}: B equals A once healed`).toEqual(rowsA);
    const held = new Map(rowsA.map((row) => [`${row.primary_namespace}/${row.key}`, row.value.toString()]));
    for (const [key, value] of acknowledged) {
      const found = held.get(key);
      expect([value, inFlight.get(key)], `round ${round}: ${key}`).toContain(found);
      // Whatever A holds now is the key's state from here on.
      acknowledged.set(key, found!);
    }
    inFlight.clear();
    if (round === KILLS) break;

    // Writers until A is killed in the middle of their writes.
    const client = new TierkvClient({ address: a.address, timeoutMs: 5_000 });
    let killed = false;
    const loops = Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; !killed; i++) {
        const key = keyName(w, i % KEYS_PER_WRITER);
        const value = `v${counter++}`;
        inFlight.set(key, value);
        try {
          await client.write({ primaryNamespace: key.split("/")[0]!, secondaryNamespace: "", key: key.split("/")[1]! }, Buffer.from(value));
          acknowledged.set(key, value);
          inFlight.delete(key);
          writes++;
        } catch {
          // A's death (or any failure) ends the writer: its in-flight value stays undecided.
          return;
        }
      }
    });
    await sleep(between(500, 1500));
    await a.kill();
    killed = true;
    await Promise.all(loops);
    await client.close();
  }

  // A clean stop leaves the marker: the next start neither reports an unclean stop nor heals.
  expect(await a.stop()).toEqual({ code: 0, signal: null });
  await a.start();
  expect(await status(a.address)).toMatchObject({ lastStopClean: true, healing: false, heals: 0 });
  console.log(`heal: ${JSON.stringify({ kills: KILLS, keys: acknowledged.size, acknowledgedWrites: writes, healedMs, warnings: Object.fromEntries(warnings), seconds: Math.round((Date.now() - started) / 1000) })}`);
  expect(await a.stop()).toEqual({ code: 0, signal: null });
  expect(await b.stop()).toEqual({ code: 0, signal: null });
}, 90_000);
