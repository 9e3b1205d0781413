// The pieces a follower stands on, in process: an all_stores watch begins with each store's head
// and reports what is pending while busy; the server's own stores (`_tierkv:`) stay out of every
// listing and watch and cannot be named; the read-only face refuses mutations.
import { describe, expect, it } from "vitest";
import { OPEN_PRINCIPAL } from "../../src/auth/principal.js";
import { AuthorizedStore, authorizeWatch } from "../../src/auth/authorized-store.js";
import { ReadOnlyStore } from "../../src/follow/read-only-store.js";
import { MemoryStore } from "../../src/store/memory.js";
import { StoreError } from "../../src/store/errors.js";
import type { KeyRef } from "../../src/store/types.js";
import { ChangeFeed, type WatchEvent } from "../../src/watch/change-feed.js";
import { errorOf } from "../support/store-assertions.js";

const at = (storeId: string, key: string): KeyRef => ({ storeId, primaryNamespace: "p", secondaryNamespace: "", key });
const value = new Uint8Array([1]);

describe("an all_stores watch", () => {
  it("begins with each store's head, leaves the server's own stores out, and reports pending while busy", async () => {
    const store = new MemoryStore();
    for (let i = 0; i < 600; i++) await store.write(at("alice", `k${i % 50}`), value);
    await store.write(at("bob", "b"), value);
    await store.write(at("_tierkv:follow", "position"), value);
    const feed = new ChangeFeed(store, { progressIntervalMs: 1 });
    const abort = new AbortController();
    const events: WatchEvent[] = [];
    try {
      for await (const event of feed.watch({ allStores: true, start: 1n, values: false }, abort.signal)) {
        events.push(event);
        // A slow reader: the progress interval passes while changes are still pending.
        if (events.length === 2) await new Promise((resolve) => setTimeout(resolve, 5));
        if (events.filter((e) => e.kind === "change").length === 601) break;
      }
    } finally {
      abort.abort();
      feed.close();
    }
    expect(events[0]).toMatchObject({ kind: "progress", sequence: 0n, pending: 601n, heads: new Map([["alice", 600n], ["bob", 1n]]) });
    const changes = events.flatMap((e) => (e.kind === "change" ? [e.change] : []));
    expect(new Set(changes.map((change) => change.storeId))).toEqual(new Set(["alice", "bob"]));
    const busy = events.slice(1).filter((e) => e.kind === "progress");
    expect(busy.length).toBeGreaterThan(0);
    expect(busy[0]).toMatchObject({ kind: "progress", sequence: 0n });
    expect((busy[0] as { pending: bigint }).pending).toBeGreaterThan(0n);
  });

  it("refuses a start in a store the log never had as past its latest", async () => {
    const store = new MemoryStore();
    await store.write(at("alice", "a"), value);
    const feed = new ChangeFeed(store);
    try {
      const events = feed.watch({ allStores: true, start: 1n, starts: new Map([["gone", 5n]]), values: false }, new AbortController().signal);
      const error = await errorOf(events.next());
      expect([error.code, error.message]).toEqual(["out-of-range", expect.stringMatching(/store gone: sequence 5 is ahead of the store's latest change, 0/)]);
    } finally {
      feed.close();
    }
  });
});

describe("the server's own stores", () => {
  it("are left out of every listing of all stores and cannot be named, whatever the caller's roles", async () => {
    const store = new MemoryStore();
    await store.write(at("alice", "a"), value);
    await store.write(at("_tierkv:follow", "position"), value);
    await store.write(at("zed", "z"), value);
    const view = new AuthorizedStore(store, OPEN_PRINCIPAL);
    const listed = await view.listAllKeys({ allStores: true });
    expect(listed.keys.map((key) => key.storeId)).toEqual(["alice", "zed"]);
    // "_" sorts before lower-case letters: the first page of one key holds only the position. It
    // comes back empty, its token kept, and the walk goes on.
    const first = await view.listAllKeys({ allStores: true, limit: 1 });
    expect(first.keys).toEqual([]);
    expect((await view.listAllKeys({ allStores: true, limit: 1, pageToken: first.nextPageToken })).keys.map((key) => key.storeId)).toEqual(["alice"]);
    for (const attempt of [view.read(at("_tierkv:follow", "position")), view.write(at("_tierkv:follow", "x"), value), view.listAllKeys({ storeId: "_tierkv:follow" })]) {
      expect((await errorOf(attempt)).code).toBe("permission-denied");
    }
    expect(() => authorizeWatch(OPEN_PRINCIPAL, { storeId: "_tierkv:follow", allStores: false })).toThrow(/reserved for the server's own records/);
  });
});

describe("a follower's read-only face", () => {
  it("refuses mutations naming its leader, and answers reads and a Txn of checks alone", async () => {
    const store = new MemoryStore();
    await store.write(at("alice", "a"), value);
    const face = new ReadOnlyStore(store, "grpc://leader:50051");
    for (const attempt of [
      face.write(at("alice", "a"), value),
      face.remove(at("alice", "a")),
      face.txn({ checks: [], operations: [{ ...at("alice", "a"), kind: "remove" }] }),
    ]) {
      const error = await errorOf(attempt);
      expect(error).toBeInstanceOf(StoreError);
      expect([error.code, error.reason, error.message]).toEqual(["failed-precondition", "read-only", "this instance follows grpc://leader:50051 (read-only); write to the leader"]);
    }
    expect(await face.txn({ checks: [{ ...at("alice", "a"), expect: "present" }], operations: [] })).toMatchObject({ succeeded: true });
    expect(await face.read(at("alice", "a"))).toEqual(value);
  });
});
