// Ordering under reordering (contract §3): one set of scenarios, run against every tier setup whose
// tiers complete operations after random delays.
import { afterEach, describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/store/memory.js";
import type { KVStore, KeyRef } from "../../src/store/types.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { DelayedStore } from "../support/fault-stores.js";
import { startTestServer, type TestServer } from "../support/server.js";

const OPERATIONS = 50;
const DELAY_MS: [number, number] = [0, 15];

interface Setup {
  readonly name: string;
  /** The key the scenarios mutate: ephemeral setups use an ephemeral key. */
  readonly key: KeyRef;
  /** The store under test and the raw stores of every tier the key lives in. */
  make(): { tier: TierStore; tiers: MemoryStore[] };
}

const durableKey: KeyRef = { primaryNamespace: "monitors", secondaryNamespace: "", key: "chan_1" };
const ephemeralKey: KeyRef = { primaryNamespace: "", secondaryNamespace: "", key: "network_graph" };
const delayed = (store: MemoryStore): DelayedStore => new DelayedStore(store, ...DELAY_MS);

const SETUPS: Setup[] = [
  {
    name: "delayed primary",
    key: durableKey,
    make() {
      const primary = new MemoryStore();
      return { tier: new TierStore({ primary: delayed(primary) }), tiers: [primary] };
    },
  },
  {
    name: "primary + delayed backup",
    key: durableKey,
    make() {
      const [primary, backup] = [new MemoryStore(), new MemoryStore()];
      return { tier: new TierStore({ primary, backup: delayed(backup) }), tiers: [primary, backup] };
    },
  },
  {
    name: "delayed primary + delayed backup",
    key: durableKey,
    make() {
      const [primary, backup] = [new MemoryStore(), new MemoryStore()];
      return { tier: new TierStore({ primary: delayed(primary), backup: delayed(backup) }), tiers: [primary, backup] };
    },
  },
  {
    name: "delayed ephemeral tier",
    key: ephemeralKey,
    make() {
      const ephemeral = new MemoryStore();
      return { tier: new TierStore({ primary: new MemoryStore(), ephemeral: delayed(ephemeral) }), tiers: [ephemeral] };
    },
  },
];

const text = (value: Uint8Array): string => Buffer.from(value).toString();
const bytes = (value: string): Uint8Array => Buffer.from(value);

/** The value of `key` in `store`, or undefined when absent. */
async function valueIn(store: KVStore, key: KeyRef): Promise<string | undefined> {
  return store.read(key).then(text, (error: { code?: string }) => {
    if (error.code === "not-found") return undefined;
    throw error;
  });
}

for (const setup of SETUPS) {
  describe(`ordering: ${setup.name}`, () => {
    let tier: TierStore;
    let tiers: MemoryStore[];
    const stores = (): KVStore[] => [tier, ...tiers];

    afterEach(async () => {
      expect(tier.snapshot().inFlightKeys).toBe(0);
      await tier.close();
    });

    it(`${OPERATIONS} concurrent writes issued in order leave the last value in every tier`, async () => {
      ({ tier, tiers } = setup.make());
      await Promise.all(Array.from({ length: OPERATIONS }, (_, i) => tier.write(setup.key, bytes(`v${i}`))));
      for (const store of stores()) expect(await valueIn(store, setup.key)).toBe(`v${OPERATIONS - 1}`);
    });

    for (const lastIsRemove of [false, true]) {
      it(`interleaved writes and removes ending in a ${lastIsRemove ? "remove" : "write"} leave its result in every tier`, async () => {
        ({ tier, tiers } = setup.make());
        const calls: Promise<unknown>[] = [];
        for (let i = 0; i < OPERATIONS; i++) {
          const remove = i === OPERATIONS - 1 ? lastIsRemove : i % 3 === 2;
          calls.push(remove ? tier.remove(setup.key, { lazy: i % 2 === 0 }) : tier.write(setup.key, bytes(`v${i}`)));
        }
        await Promise.all(calls);
        const expected = lastIsRemove ? undefined : `v${OPERATIONS - 1}`;
        for (const store of stores()) expect(await valueIn(store, setup.key)).toBe(expected);
      });
    }

    it("applies caller versions in version order, however the calls arrive", async () => {
      ({ tier, tiers } = setup.make());
      const versions = Array.from({ length: OPERATIONS }, (_, i) => BigInt(i + 1));
      versions.sort(() => Math.random() - 0.5);
      await Promise.all(versions.map((version) => tier.write(setup.key, bytes(`v${version}`), { version })));
      for (const store of stores()) expect(await valueIn(store, setup.key)).toBe(`v${OPERATIONS}`);
      expect(tier.snapshot().staleMutations).toBeGreaterThan(0);
    });

    it("acknowledges but does not apply a write or remove older than the applied version", async () => {
      ({ tier, tiers } = setup.make());
      expect(await tier.write(setup.key, bytes("current"), { version: 100n })).toBe("applied");
      expect(await tier.write(setup.key, bytes("late"), { version: 99n })).toBe("stale");
      expect(await tier.remove(setup.key, { version: 50n })).toBe("stale");
      for (const store of stores()) expect(await valueIn(store, setup.key)).toBe("current");
    });
  });
}

describe("ordering over gRPC", () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
  });

  it(`${OPERATIONS} concurrent client writes to one key with a slow backup leave the last value in both tiers`, async () => {
    const [primary, backup] = [new MemoryStore(), new MemoryStore()];
    const tier = new TierStore({ primary, backup: new DelayedStore(backup, ...DELAY_MS) });
    server = await startTestServer(tier);
    const client = server.client;
    await client.write(durableKey, bytes("warm-up")); // connects, so the burst goes out in order
    await Promise.all(Array.from({ length: OPERATIONS }, (_, i) => client.write(durableKey, bytes(`v${i}`))));
    for (const store of [client, primary, backup]) expect(await valueIn(store, durableKey)).toBe(`v${OPERATIONS - 1}`);
    expect(tier.snapshot().inFlightKeys).toBe(0);
  });
});
