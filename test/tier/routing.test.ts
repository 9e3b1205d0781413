// TierStore routing (contract §4): which tier each call reaches, and listing across primary and ephemeral.
import { describe, expect, it } from "vitest";
import type { KeyRef, NamespaceRef } from "../../src/store/types.js";
import { formatPath } from "../../src/store/validate.js";
import { DEFAULT_EPHEMERAL_KEYS } from "../../src/tier/ephemeral-keys.js";
import type { RecordingStore } from "../support/fault-stores.js";
import {
  ROOT,
  at,
  bytes,
  errorOf,
  ns,
  recordedTiers,
  sorted,
  text,
  walkPages,
  type RecordedTiers,
} from "./tier-test-helpers.js";

const MONITORS = ns("monitors");
const CUSTOM = ns("ns", "sub");
const PAGE_SIZES = [1, 2, 1000] as const;

/** A call as RecordingStore records it. */
const call = (operation: string, target: KeyRef | NamespaceRef): string => `${operation} ${formatPath(target)}`;

/** The recorded calls of `store` that touch `ref`, for any operation. */
const callsFor = (store: RecordingStore, ref: KeyRef): string[] =>
  store.calls.filter((c) => c.slice(c.indexOf(" ") + 1) === formatPath(ref));

/** What `writeReadRemove` makes a tier holding `ref` see (the last read finds nothing). */
const writeReadRemoveCalls = (ref: KeyRef): string[] => ["write", "read", "remove", "read"].map((op) => call(op, ref));

const MUTATIONS_AND_READS = ["read", "write", "remove"] as const;

/** Writes, reads back and removes `key` through the tier. */
async function writeReadRemove(tiers: RecordedTiers, key: KeyRef): Promise<void> {
  await tiers.tier.write(key, bytes(`value of ${key.key}`));
  expect(text(await tiers.tier.read(key))).toBe(`value of ${key.key}`);
  await tiers.tier.remove(key);
  expect((await errorOf(tiers.tier.read(key))).code).toBe("not-found");
}

/** Asserts `list` and a `listPage` walk at every page size return exactly `expected`, each key once. */
async function expectListing(tiers: RecordedTiers, namespace: NamespaceRef, expected: string[]): Promise<void> {
  const listed = await tiers.tier.list(namespace);
  expect(listed).toHaveLength(expected.length);
  expect(sorted(listed)).toEqual(sorted(expected));
  for (const pageSize of PAGE_SIZES) {
    const walked = await walkPages(tiers.tier, namespace, pageSize);
    expect(walked, `page size ${pageSize}`).toHaveLength(expected.length);
    expect(sorted(walked), `page size ${pageSize}`).toEqual(sorted(expected));
  }
}

describe("TierStore routing", () => {
  it.each(DEFAULT_EPHEMERAL_KEYS)("keeps the default ephemeral key %s in the ephemeral tier only", async (key) => {
    const tiers = recordedTiers();
    const ref = at(ROOT, key);
    await writeReadRemove(tiers, ref);
    expect(tiers.ephemeral!.calls).toEqual(writeReadRemoveCalls(ref));
    expect(callsFor(tiers.primary, ref)).toEqual([]);
    expect(callsFor(tiers.backup, ref)).toEqual([]);
  });

  it("keeps the value of an ephemeral key in the ephemeral store itself", async () => {
    const tiers = recordedTiers();
    await tiers.tier.write(at(ROOT, "network_graph"), bytes("graph"));
    expect(text(await tiers.ephemeral!.inner.read(at(ROOT, "network_graph")))).toBe("graph");
    expect((await errorOf(tiers.primary.inner.read(at(ROOT, "network_graph")))).code).toBe("not-found");
    expect((await errorOf(tiers.backup.inner.read(at(ROOT, "network_graph")))).code).toBe("not-found");
  });

  it("routes a custom ephemeral key list instead of the defaults", async () => {
    const tiers = recordedTiers({ ephemeralKeys: ["ns/sub/cache"] });
    const cache = at(CUSTOM, "cache");
    await writeReadRemove(tiers, cache);
    expect(tiers.ephemeral!.calls).toEqual(writeReadRemoveCalls(cache));
    expect(callsFor(tiers.primary, cache)).toEqual([]);
    expect(callsFor(tiers.backup, cache)).toEqual([]);

    // A neighbour of the custom key and the (replaced) defaults are durable.
    for (const ref of [at(CUSTOM, "other"), at(ROOT, "network_graph")]) {
      await tiers.tier.write(ref, bytes("durable"));
      expect(text(await tiers.primary.inner.read(ref))).toBe("durable");
      expect(text(await tiers.backup.inner.read(ref))).toBe("durable");
    }
    expect(tiers.ephemeral!.of("write")).toEqual([call("write", cache)]);
  });

  it("never sends a durable key to the ephemeral tier, and writes and removes it in primary and backup", async () => {
    const tiers = recordedTiers();
    const durable = [
      at(ROOT, "manager"),
      at(ROOT, "monitor_x"),
      at(MONITORS, "chan_1"),
      // An ephemeral key's name outside the root namespace is an ordinary key.
      at(MONITORS, "network_graph"),
      at(ns("a", "b"), "scorer"),
    ];
    for (const ref of durable) await writeReadRemove(tiers, ref);
    for (const op of MUTATIONS_AND_READS) expect(tiers.ephemeral!.of(op)).toEqual([]);
    for (const ref of durable) {
      // With a backup, a mutation without a version first reads the primary's state, so both tiers
      // store the same version (past the stored one) and revision.
      expect(callsFor(tiers.primary, ref)).toEqual(["read", "write", "read", "read", "remove", "read"].map((op) => call(op, ref)));
      expect(callsFor(tiers.backup, ref)).toEqual([call("write", ref), call("remove", ref)]);
    }
  });

  it("never reads or lists the backup", async () => {
    const tiers = recordedTiers();
    const keys = [at(ROOT, "manager"), at(ROOT, "network_graph"), at(MONITORS, "chan_1"), at(CUSTOM, "x")];
    for (const ref of keys) await tiers.tier.write(ref, bytes("v"));
    for (const ref of keys) await tiers.tier.read(ref);
    await errorOf(tiers.tier.read(at(MONITORS, "absent")));
    for (const namespace of [ROOT, MONITORS, CUSTOM, ns("empty")]) {
      await tiers.tier.list(namespace);
      for (const pageSize of PAGE_SIZES) await walkPages(tiers.tier, namespace, pageSize);
    }
    expect(tiers.backup.of("read")).toEqual([]);
    expect(tiers.backup.of("list")).toEqual([]);
    expect(tiers.backup.of("listPage")).toEqual([]);
    expect(tiers.backup.of("write")).toHaveLength(3);
  });

  it.each(DEFAULT_EPHEMERAL_KEYS)("stores %s in primary and backup when there is no ephemeral tier", async (key) => {
    const tiers = recordedTiers({ ephemeral: false });
    const ref = at(ROOT, key);
    await tiers.tier.write(ref, bytes("cache"));
    expect(text(await tiers.primary.inner.read(ref))).toBe("cache");
    expect(text(await tiers.backup.inner.read(ref))).toBe("cache");
    expect(text(await tiers.tier.read(ref))).toBe("cache");
    // The first read is the write's (it learns the primary's revision), the second the caller's.
    expect(tiers.primary.of("read")).toEqual([call("read", ref), call("read", ref)]);
    await tiers.tier.write(at(ROOT, "manager"), bytes("m"));
    await expectListing(tiers, ROOT, [key, "manager"]);
    await tiers.tier.remove(ref);
    expect((await errorOf(tiers.backup.inner.read(ref))).code).toBe("not-found");
    expect((await errorOf(tiers.primary.inner.read(ref))).code).toBe("not-found");
  });
});

describe("TierStore listing across tiers", () => {
  it("lists durable and ephemeral root keys together (regression: root listed only the ephemeral tier's keys)", async () => {
    const tiers = recordedTiers();
    for (const key of ["manager", "network_graph", "monitor_x", "scorer"]) {
      await tiers.tier.write(at(ROOT, key), bytes(key));
    }
    expect(sorted(await tiers.primary.inner.list(ROOT))).toEqual(["manager", "monitor_x"]);
    expect(sorted(await tiers.ephemeral!.inner.list(ROOT))).toEqual(["network_graph", "scorer"]);
    await expectListing(tiers, ROOT, ["manager", "monitor_x", "network_graph", "scorer"]);
  });

  it("walks many durable root keys and every ephemeral one exactly once, at page sizes 1, 2, 7 and 1000", async () => {
    const tiers = recordedTiers();
    const durable = Array.from({ length: 40 }, (_, i) => `durable_${i}`);
    const expected = [...durable, ...DEFAULT_EPHEMERAL_KEYS];
    // Interleave so creation order mixes both kinds.
    for (let i = 0; i < durable.length; i++) {
      await tiers.tier.write(at(ROOT, durable[i]!), bytes("d"));
      const ephemeral = DEFAULT_EPHEMERAL_KEYS[i];
      if (ephemeral !== undefined) await tiers.tier.write(at(ROOT, ephemeral), bytes("e"));
    }
    for (const pageSize of [1, 2, 7, 1000]) {
      const walked = await walkPages(tiers.tier, ROOT, pageSize);
      expect(walked, `page size ${pageSize}`).toHaveLength(expected.length);
      expect(sorted(walked)).toEqual(sorted(expected));
    }
  });

  it("hides a stale primary copy of an ephemeral key and reads the ephemeral tier's value", async () => {
    const tiers = recordedTiers();
    // Written straight into the primary, as before the ephemeral tier existed.
    await tiers.primary.inner.write(at(ROOT, "network_graph"), bytes("stale"));
    await tiers.tier.write(at(ROOT, "manager"), bytes("m"));

    await expectListing(tiers, ROOT, ["manager"]);
    expect((await errorOf(tiers.tier.read(at(ROOT, "network_graph")))).code).toBe("not-found");

    await tiers.tier.write(at(ROOT, "network_graph"), bytes("fresh"));
    await expectListing(tiers, ROOT, ["manager", "network_graph"]);
    expect(text(await tiers.tier.read(at(ROOT, "network_graph")))).toBe("fresh");
    // The tier leaves the stale copy alone; it only stops showing it.
    expect(text(await tiers.primary.inner.read(at(ROOT, "network_graph")))).toBe("stale");
  });

  it("keeps tokens opaque and valid across the primary → ephemeral boundary, and bound to their namespace", async () => {
    const tiers = recordedTiers();
    for (const key of ["manager", "monitor_x", "network_graph", "scorer", "external_pathfinding_scores_cache"]) {
      await tiers.tier.write(at(ROOT, key), bytes(key));
    }
    for (const key of ["chan_1", "chan_2", "chan_3"]) await tiers.tier.write(at(MONITORS, key), bytes(key));

    const tokensOf = async (namespace: NamespaceRef): Promise<{ tokens: string[]; keys: string[] }> => {
      const tokens: string[] = [];
      const keys: string[] = [];
      let pageToken = "";
      for (let pages = 0; pages < 100; pages++) {
        const page = await tiers.tier.listPage(namespace, { pageSize: 1, pageToken });
        keys.push(...page.keys);
        if (page.nextPageToken === "") break;
        expect(page.nextPageToken).toMatch(/^[A-Za-z0-9_-]+$/);
        tokens.push(page.nextPageToken);
        pageToken = page.nextPageToken;
      }
      return { tokens, keys };
    };

    const root = await tokensOf(ROOT);
    expect(sorted(root.keys)).toEqual(sorted(["manager", "monitor_x", ...DEFAULT_EPHEMERAL_KEYS]));
    // One token per page but the last: tokens into the primary's pages and into the ephemeral keys.
    expect(root.tokens).toHaveLength(4);
    const monitors = await tokensOf(MONITORS);
    expect(monitors.tokens).toHaveLength(2);

    for (const token of root.tokens) {
      const error = await errorOf(tiers.tier.listPage(MONITORS, { pageSize: 1, pageToken: token }));
      expect(error.code).toBe("invalid-argument");
    }
    for (const token of monitors.tokens) {
      const error = await errorOf(tiers.tier.listPage(ROOT, { pageSize: 1, pageToken: token }));
      expect(error.code).toBe("invalid-argument");
    }
    expect((await errorOf(tiers.tier.listPage(ROOT, { pageToken: "not-a-token" }))).code).toBe("invalid-argument");
  });

  it("never consults the ephemeral tier when listing namespaces that cannot hold ephemeral keys", async () => {
    const tiers = recordedTiers();
    await tiers.tier.write(at(MONITORS, "chan_1"), bytes("c"));
    await tiers.tier.write(at(CUSTOM, "scorer"), bytes("s"));
    await expectListing(tiers, MONITORS, ["chan_1"]);
    await expectListing(tiers, CUSTOM, ["scorer"]);
    await expectListing(tiers, ns("empty"), []);
    expect(tiers.ephemeral!.calls).toEqual([]);
  });

  it("with a custom ephemeral list, consults the ephemeral tier only for that key's namespace", async () => {
    const tiers = recordedTiers({ ephemeralKeys: ["ns/sub/cache"] });
    await tiers.tier.write(at(ROOT, "manager"), bytes("m"));
    await tiers.tier.write(at(ROOT, "network_graph"), bytes("g"));
    await expectListing(tiers, ROOT, ["manager", "network_graph"]);
    expect(tiers.ephemeral!.calls).toEqual([]);

    await tiers.tier.write(at(CUSTOM, "cache"), bytes("c"));
    await tiers.tier.write(at(CUSTOM, "durable"), bytes("d"));
    await expectListing(tiers, CUSTOM, ["cache", "durable"]);
    expect(tiers.ephemeral!.of("list").length).toBeGreaterThan(0);
    const allowed = new Set([...["list", "listPage"].map((op) => call(op, CUSTOM)), call("write", at(CUSTOM, "cache"))]);
    expect(tiers.ephemeral!.calls.filter((c) => !allowed.has(c))).toEqual([]);
  });
});

describe("ephemeral routing and VSS stores", () => {
  it("keeps a VSS store's key named like an ephemeral key durable", async () => {
    const { tier, primary, ephemeral } = recordedTiers();
    const ref = { storeId: "vss:alice:wallet", primaryNamespace: "", secondaryNamespace: "", key: "scorer" };
    await tier.write(ref, bytes("client data"));
    expect(text(await primary.inner.read(ref))).toBe("client data");
    expect(ephemeral!.of("write")).toEqual([]);
    await tier.close();
  });
});
