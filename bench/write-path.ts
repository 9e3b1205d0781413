//! `node dist/bench/write-path.js [ms per round]`: the server's store path in process, without a
//! network — an AuthorizedStore over the tiered store with a `memory:` primary and backup, as a
//! call's handler reaches it — timed per call (median of 5 rounds), for changes to the hot path
//! (validation, authorization, routing) too small to see through gRPC on a busy machine.

import { AuthorizedStore } from "../src/auth/authorized-store.js";
import { OPEN_PRINCIPAL } from "../src/auth/principal.js";
import { silentLogger } from "../src/log.js";
import { MemoryStore } from "../src/store/memory.js";
import type { KVStore } from "../src/store/types.js";
import { TierStore } from "../src/tier/tier-store.js";

const KEYS = 1000;
const ROUNDS = 5;
const value = Buffer.alloc(1024, 1);
const ref = (i: number) => ({ primaryNamespace: "monitors", secondaryNamespace: "updates", key: `chan_${i % KEYS}` });

const CASES: Record<string, (store: KVStore, i: number) => Promise<unknown>> = {
  "write 1 KiB": (store, i) => store.write(ref(i), value),
  read: (store, i) => store.readVersioned(ref(i)),
  "txn of 2 writes (a VSS put)": (store, i) =>
    store.txn({ checks: [], operations: [{ ...ref(i), kind: "write", value }, { ...ref(i + 1), kind: "write", value }] }),
};

async function main(): Promise<void> {
  const roundMs = Number(process.argv[2] ?? 1000);
  const tiers = new TierStore({ primary: new MemoryStore(), backup: new MemoryStore(), logger: silentLogger() });
  const store = new AuthorizedStore(tiers, OPEN_PRINCIPAL);
  for (let i = 0; i < KEYS; i++) await store.write(ref(i), value);
  const samples = new Map<string, number[]>(Object.keys(CASES).map((name) => [name, []]));
  // Rounds interleave the cases, so a noisy moment spreads over all of them.
  for (let round = 0; round <= ROUNDS; round++) {
    for (const [name, run] of Object.entries(CASES)) {
      let calls = 0;
      const started = process.hrtime.bigint();
      const end = performance.now() + roundMs;
      while (performance.now() < end) await run(store, calls++);
      // Round 0 warms the JIT up and is not counted.
      if (round > 0) samples.get(name)!.push(Number(process.hrtime.bigint() - started) / calls);
    }
  }
  for (const [name, ns] of samples) {
    const sorted = [...ns].sort((a, b) => a - b);
    console.log(`${name.padEnd(28)} ${(sorted[ROUNDS >> 1]! / 1000).toFixed(2)} µs/call (rounds ${(sorted[0]! / 1000).toFixed(2)}–${(sorted.at(-1)! / 1000).toFixed(2)})`);
  }
  await tiers.close();
}

await main();
