// Per-store quotas (contract §7): a write past a tenant's limit of keys or bytes is refused with
// RESOURCE_EXHAUSTED naming the limit, and nothing is written; other tenants are not affected.
import { afterEach, describe, expect, it } from "vitest";
import { AuthorizedStore } from "../../src/auth/authorized-store.js";
import type { Principal } from "../../src/auth/principal.js";
import { MemoryStore } from "../../src/store/memory.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { at, bytes, errorOf, ns, text } from "./tier-test-helpers.js";

const tenant = (storeId: string, quota?: Principal["quota"]): Principal => ({
  name: storeId,
  storeId,
  roles: new Set(["write"]),
  ...(quota !== undefined && { quota }),
});

let tier: TierStore;
afterEach(async () => {
  await tier.close();
});

describe("quotas", () => {
  it("refuses a new key past maxKeys, allows overwrites and removes, and counts removes back", async () => {
    const primary = new MemoryStore();
    tier = new TierStore({ primary });
    const alice = new AuthorizedStore(tier, tenant("alice", { maxKeys: 3 }));
    for (const key of ["a", "b", "c"]) expect(await alice.write(at(ns("m"), key), bytes("v"))).toBe("applied");
    const error = await errorOf(alice.write(at(ns("m"), "d"), bytes("v")));
    expect(error.code).toBe("resource-exhausted");
    expect(error.message).toBe("store alice holds 3 keys; this would make 4 and its quota is 3 keys");
    expect((await errorOf(alice.read(at(ns("m"), "d")))).code).toBe("not-found");
    expect(await alice.write(at(ns("m"), "a"), bytes("overwritten"))).toBe("applied");
    expect(await alice.remove(at(ns("m"), "b"))).toBe("applied");
    expect(await alice.write(at(ns("m"), "d"), bytes("fits now"))).toBe("applied");
    expect(await tier.storeUsage("alice")).toEqual({ keys: 3, bytes: 11 + 1 + 8 });
    // Another tenant's keys are its own business.
    const bob = new AuthorizedStore(tier, tenant("bob", { maxKeys: 1 }));
    expect(await bob.write(at(ns("m"), "a"), bytes("bob's"))).toBe("applied");
    expect(text(await alice.read(at(ns("m"), "a")))).toBe("overwritten");
  });

  it("refuses a write that would pass maxBytes, counting what an overwrite replaces", async () => {
    tier = new TierStore({ primary: new MemoryStore() });
    const alice = new AuthorizedStore(tier, tenant("alice", { maxBytes: 10 }));
    await alice.write(at(ns("m"), "a"), bytes("12345678"));
    const error = await errorOf(alice.write(at(ns("m"), "b"), bytes("123")));
    expect(error.code).toBe("resource-exhausted");
    expect(error.message).toContain("its quota is 10 bytes");
    expect(await alice.write(at(ns("m"), "a"), bytes("1234567890"))).toBe("applied");
    expect(await tier.storeUsage("alice")).toEqual({ keys: 1, bytes: 10 });
  });

  it("checks an atomic batch as a whole", async () => {
    tier = new TierStore({ primary: new MemoryStore() });
    const alice = new AuthorizedStore(tier, tenant("alice", { maxKeys: 2 }));
    const write = (key: string) => ({ ...at(ns("m"), key), kind: "write" as const, value: bytes("v") });
    expect((await errorOf(alice.txn({ checks: [], operations: [write("a"), write("b"), write("c")] }))).code).toBe("resource-exhausted");
    expect(await tier.storeUsage("alice")).toEqual({ keys: 0, bytes: 0 });
    expect((await alice.txn({ checks: [], operations: [write("a"), write("b")] })).succeeded).toBe(true);
    expect(await tier.storeUsage("alice")).toEqual({ keys: 2, bytes: 2 });
  });
});
