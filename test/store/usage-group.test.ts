// Usage groups (src/store/usage-group.ts): which store ids one quota holds together, the key range
// that reads them, and how a group's change is made from its stores' changes.
import { describe, expect, it } from "vitest";
import { belongsTo, groupChange, UsageChanges, usageGroupOf, vssUserPrefix } from "../../src/store/usage-group.js";

/** Compares as UTF-8 bytes, as SQLite's BINARY and PostgreSQL's "C" collation do. */
const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));
const inRange = (from: string, to: string, id: string): boolean => byteOrder(id, from) >= 0 && byteOrder(id, to) < 0;

describe("usageGroupOf", () => {
  it("puts a VSS user's store ids in one group, named by their prefix, and every other store in a group of its own", () => {
    expect(usageGroupOf("vss:alice:wallet")).toEqual({ id: "vss:alice:", from: "vss:alice:", to: "vss:alice;", single: false, name: "the VSS stores of user alice" });
    expect(usageGroupOf("vss:alice:")).toMatchObject({ id: "vss:alice:", single: false });
    expect(usageGroupOf("vss:alice:a:b")).toMatchObject({ id: "vss:alice:" });
    expect(usageGroupOf("alice")).toEqual({ id: "alice", from: "alice", to: "alice\u0001", single: true, name: "store alice" });
    expect(usageGroupOf("vss:alice")).toMatchObject({ id: "vss:alice", single: true });
  });

  it("takes the user as vss-service writes it: URI-encoded, so a user's own `:` or `%` cannot shift the boundary", () => {
    const user = "a:b%c";
    expect(vssUserPrefix(user)).toBe("vss:a%3Ab%25c:");
    const group = usageGroupOf(`${vssUserPrefix(user)}wallet`);
    expect(group.id).toBe("vss:a%3Ab%25c:");
    expect(belongsTo(group, `${vssUserPrefix("a")}b%c:wallet`)).toBe(false);
  });

  it("reads exactly its members as a key range, in byte order", () => {
    const ids = [
      "vss:alice:", "vss:alice:wallet", "vss:alice:\u{1F600}", "vss:alice:~", "vss:alice;", "vss:alice", "vss:alice2:x", "vss:alic:x",
      "vss:bob:alice", "alice", "alice2", "alice:x", "alic", "vss:", "vss:\u00e9:x",
    ];
    for (const storeId of ids) {
      const group = usageGroupOf(storeId);
      for (const other of ids) {
        expect({ group: group.id, other, inRange: inRange(group.from, group.to, other) }).toEqual({ group: group.id, other, inRange: belongsTo(group, other) });
      }
    }
  });
});

describe("UsageChanges and groupChange", () => {
  it("sums changes per store, gathers them per group, and counts the store ids filled less those emptied", () => {
    const changes = new UsageChanges();
    changes.add("vss:alice:a", { keys: 1, bytes: 10 });
    changes.add("vss:alice:a", { keys: 1, bytes: 5 });
    changes.add("vss:alice:b", { keys: -1, bytes: -3 });
    changes.add("bob", { keys: 1, bytes: 1 });
    expect(changes.of("vss:alice:a")).toEqual({ keys: 2, bytes: 15 });
    expect(changes.of("vss:alice:c")).toBeUndefined();
    expect([...changes.byGroup()].map(({ group }) => group.id)).toEqual(["vss:alice:", "bob"]);
    const alice = changes.inGroup(usageGroupOf("vss:alice:x"));
    // a was empty (filled), b held one key (emptied).
    expect(groupChange(alice, (storeId) => (storeId === "vss:alice:b" ? 1 : 0))).toEqual({ keys: 1, bytes: 12, stores: 0 });
    // b held two keys: it keeps one.
    expect(groupChange(alice, (storeId) => (storeId === "vss:alice:b" ? 2 : 0))).toEqual({ keys: 1, bytes: 12, stores: 1 });
    changes.clear();
    expect([...changes.byGroup()]).toEqual([]);
  });
});
