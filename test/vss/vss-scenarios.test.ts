// The VSS server's own behavioural scenarios (vss-server's rust/api/src/kv_store_tests.rs),
// re-expressed against tierkv's VSS listener over HTTP, on a memory and a SQLite primary; then
// what LDK Node relies on besides (long keys, large values, the "" last-page token, concurrency,
// isolation of users, store ids and the gRPC key space).

import { randomBytes, randomInt } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/vss/v1/vss_pb.js";
import { StoreError } from "../../src/store/errors.js";
import { MemoryStore } from "../../src/store/memory.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { KVStore } from "../../src/store/types.js";
import { vssStoreId } from "../../src/vss/vss-service.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { refused, startVssHarness, text, VssTestClient, type Item, type VssHarness } from "./vss-harness.js";

const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** A random store id of 0 to 6 alphanumerics, as vss-server's newest TestContext makes them (may be empty). */
function randomStoreId(): string {
  let id = "";
  for (let i = randomInt(0, 7); i > 0; i--) id += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
  return id;
}

/** Distinct store ids for the tests of one harness (random ones may repeat, the empty one included). */
function storeIds(): () => string {
  const used = new Set<string>();
  return () => {
    for (;;) {
      const id = randomStoreId();
      if (!used.has(id)) {
        used.add(id);
        return id;
      }
    }
  };
}

const BACKENDS: ReadonlyArray<readonly [string, () => KVStore]> = [
  ["memory", () => new MemoryStore()],
  ["sqlite", () => new SqliteStore(join(tempDir(), "vss.db"), { synchronous: "NORMAL" })],
];

/** Runs `count` puts `concurrency` at a time. */
async function inParallel(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

describe.each(BACKENDS)("VSS scenarios over a %s primary", (_name, open) => {
  let vss: VssHarness;
  const nextStoreId = storeIds();
  const client = (): VssTestClient => new VssTestClient(vss.url, nextStoreId());

  beforeAll(async () => {
    vss = await startVssHarness({ primary: open() });
  });
  afterAll(async () => {
    await vss.close();
    removeTempDirs();
  });

  it("put_should_succeed_when_single_object_put_operation", async () => {
    const c = client();
    await c.put([["k1", "k1v1", 0]], 0);
    await c.put([["k1", "k1v2", 1]], 1);
    await c.put([["k2", "k2v1", -1]], 2);
    await c.put([["k2", "k2v2", -1]], 3);
    await c.put([["k2", "k2v3", -1]], 4);
    const k1 = await c.get("k1");
    expect([k1.version, text(k1.value)]).toEqual([2n, "k1v2"]);
    // A non-conditional put resets the version to 1.
    const k2 = await c.get("k2");
    expect([k2.version, text(k2.value)]).toEqual([1n, "k2v3"]);
    expect((await c.get("global_version")).version).toBe(5n);
  });

  it("put_should_succeed_when_multi_object_put_operation", async () => {
    const c = client();
    await c.put([["k1", "k1v1", 0], ["k2", "k2v1", 0]], 0);
    await c.put([["k1", "k1v2", 1], ["k2", "k2v2", 1]], 1);
    expect((await c.get("k1")).version).toBe(2n);
    expect(text((await c.get("k2")).value)).toBe("k2v2");
    expect((await c.get("k2")).version).toBe(2n);
    expect((await c.get("global_version")).version).toBe(2n);
  });

  it("put_should_fail_when_key_version_mismatched", async () => {
    const c = client();
    await c.put([["k1", "k1v1", 0]], 0);
    await refused(c.put([["k1", "k1v2", 0]], 1), 409, ErrorCode.CONFLICT_EXCEPTION);
    const k1 = await c.get("k1");
    expect([k1.version, text(k1.value)]).toEqual([1n, "k1v1"]);
    expect((await c.get("global_version")).version).toBe(1n);
  });

  it("put_multi_object_should_fail_when_single_key_version_mismatched", async () => {
    const c = client();
    await c.put([["k1", "k1v1", 0], ["k2", "k2v1", 0]]);
    await refused(c.put([["k1", "k1v2", 0], ["k2", "k2v2", 1]]), 409, ErrorCode.CONFLICT_EXCEPTION);
    for (const key of ["k1", "k2"]) {
      const stored = await c.get(key);
      expect([stored.version, text(stored.value)]).toEqual([1n, `${key}v1`]);
    }
  });

  it("put_should_fail_when_global_version_mismatched", async () => {
    const c = client();
    await c.put([["k1", "k1v1", 0]], 0);
    await refused(c.put([["k1", "k1v2", 1]], 0), 409, ErrorCode.CONFLICT_EXCEPTION);
    const k1 = await c.get("k1");
    expect([k1.version, text(k1.value)]).toEqual([1n, "k1v1"]);
  });

  it("put_should_succeed_when_no_global_version_is_given", async () => {
    const c = client();
    await c.put([["k1", "k1v1", 0]]);
    await c.put([["k1", "k1v2", 1]]);
    expect((await c.get("k1")).version).toBe(2n);
    const global = await c.get("global_version");
    expect([global.key, global.version, global.value.length]).toEqual(["global_version", 0n, 0]);
  });

  it("put_and_delete_should_succeed_as_atomic_transaction", async () => {
    const c = client();
    await c.put([["k1", "k1v1", 0]]);
    await c.put([["k2", "k2v1", 0]], undefined, [["k1", 1]]);
    expect((await c.get("k2")).version).toBe(1n);
    await refused(c.get("k1"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);

    // A wrong delete version fails the put with it.
    await refused(c.put([["k3", "k3v1", 0]], undefined, [["k2", 3]]), 409, ErrorCode.CONFLICT_EXCEPTION);
    await refused(c.get("k3"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
    expect((await c.get("k2")).version).toBe(1n);
    // A wrong put version fails the delete with it.
    await refused(c.put([["k3", "k3v1", 1]], undefined, [["k2", 1]]), 409, ErrorCode.CONFLICT_EXCEPTION);
    expect((await c.get("k2")).version).toBe(1n);
    // A wrong global version fails both.
    await refused(c.put([["k3", "k3v1", 0]], 2, [["k2", 1]]), 409, ErrorCode.CONFLICT_EXCEPTION);
    await refused(c.get("k3"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
    expect((await c.get("k2")).version).toBe(1n);
    expect((await c.get("global_version")).version).toBe(0n);
  });

  it("delete_items with -1 on an absent key conflicts, and nothing else applies", async () => {
    const c = client();
    await refused(c.put([["k1", "v", 0]], undefined, [["absent", -1]]), 409, ErrorCode.CONFLICT_EXCEPTION);
    await refused(c.get("k1"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
    await c.put([["k1", "v", 0]]);
    await c.put([], undefined, [["k1", -1]]);
    await refused(c.get("k1"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
  });

  it("delete_should_succeed_when_item_exists", async () => {
    const c = client();
    await c.put([["k1", "k1v1", 0]]);
    await c.delete("k1", 1);
    await refused(c.get("k1"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
    await c.put([["k1", "k1v1", 0]]);
    await c.put([["k1", "k1v2", 1]]);
    await c.delete("k1", -1);
    await refused(c.get("k1"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
  });

  it("delete_should_succeed_when_item_does_not_exist", async () => {
    const c = client();
    await c.delete("k1", 0);
    await c.delete("k1", -1);
    await c.delete("k1", 7);
  });

  it("delete_should_be_idempotent", async () => {
    const c = client();
    await c.put([["k1", "k1v1", 0]]);
    await c.delete("k1", 1);
    await c.delete("k1", 1);
    await refused(c.get("k1"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
  });

  it("a delete with another version answers success and deletes nothing", async () => {
    const c = client();
    await c.put([["k1", "k1v1", 0]]);
    await c.delete("k1", 2);
    await c.delete("k1", 0);
    expect((await c.get("k1")).version).toBe(1n);
  });

  it("get_should_throw_no_such_key_exception_when_key_does_not_exist", async () => {
    await refused(client().get("non_existent_key"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
  });

  it("get_should_return_correct_value_when_key_exists", async () => {
    const c = client();
    await c.put([["k1", "k1v1", 0]], 0);
    let k1 = await c.get("k1");
    expect([k1.key, k1.version, text(k1.value)]).toEqual(["k1", 1n, "k1v1"]);
    await c.put([["k1", "k1v2", 1], ["k2", "k2v1", 0]], 1);
    k1 = await c.get("k1");
    expect([k1.version, text(k1.value)]).toEqual([2n, "k1v2"]);
    let k2 = await c.get("k2");
    expect([k2.version, text(k2.value)]).toEqual([1n, "k2v1"]);
    await c.put([["k2", "k2v2", 1], ["k3", "k3v1", 0]], 2);
    k2 = await c.get("k2");
    expect([k2.version, text(k2.value)]).toEqual([2n, "k2v2"]);
    const k3 = await c.get("k3");
    expect([k3.version, text(k3.value)]).toEqual([1n, "k3v1"]);
  });

  it("list_should_return_paginated_response", async () => {
    const c = client();
    for (let i = 0; i < 1000; i++) await c.put([[`k${i}`, `k${i}v1`, 0]], i);
    await c.put([["k1", "k1v2", 1]], 1000);
    await c.put([["k2", "k2v2", 1]], 1001);
    await c.put([["k2", "k2v3", 2]], 1002);

    const { pages, keys } = await c.listAll();
    expect(pages[0]!.globalVersion).toBe(1003n);
    for (const page of pages.slice(1)) expect(page.globalVersion).toBeUndefined();
    for (const page of pages) expect(page.keyVersions.length).toBeLessThanOrEqual(100);
    expect(pages.at(-1)!.nextPageToken).toBe("");
    const versions = new Map(keys.map((kv) => [kv.key, kv.version]));
    expect(versions.size).toBe(1000);
    expect(keys.length).toBe(1000);
    expect(versions.get("k1")).toBe(2n);
    expect(versions.get("k2")).toBe(3n);
    expect(versions.has("global_version")).toBe(false);
    for (const kv of keys) expect(kv.value.length).toBe(0);
  });

  it("list_should_honour_page_size_and_key_prefix_if_provided", async () => {
    const c = client();
    for (let i = 0; i < 20; i++) await c.put([[`${i}k`, `${i}k_v1`, 0]], i);
    const { pages, keys } = await c.listAll({ prefix: "1", pageSize: 5 });
    for (const page of pages) expect(page.keyVersions.length).toBeLessThanOrEqual(5);
    expect(keys.map((kv) => kv.key).sort()).toEqual(["1k", "10k", "11k", "12k", "13k", "14k", "15k", "16k", "17k", "18k", "19k"].sort());
  });

  it("list_should_return_zero_global_version_when_global_versioning_not_enabled", async () => {
    const c = client();
    await inParallel(1000, 50, (i) => c.put([[`k${i}`, `k${i}v1`, 0]]));
    const { pages, keys } = await c.listAll();
    expect(pages[0]!.globalVersion ?? 0n).toBe(0n);
    expect(new Set(keys.map((kv) => kv.key)).size).toBe(1000);
    expect(keys.some((kv) => kv.key === "global_version")).toBe(false);
  });

  it("list_should_limit_max_page_size", async () => {
    const c = client();
    for (let batch = 0; batch < 10; batch++) {
      const items: Item[] = Array.from({ length: 1000 }, (_, i) => [`k${batch * 1000 + i}`, "v", 0] as const);
      await c.put(items, batch);
    }
    const { pages, keys } = await c.listAll({ pageSize: 3000 });
    for (const page of pages) expect(page.keyVersions.length).toBeLessThanOrEqual(100);
    expect(new Set(keys.map((kv) => kv.key)).size).toBe(10_000);
  });

  it("list_should_return_results_ordered_by_creation_time", async () => {
    const c = client();
    await c.put([["z_first", "v", 0]], 0);
    await c.put([["a_third", "v", 0]], 1);
    await c.put([["m_second", "v", 0]], 2);
    const page = await c.list();
    expect(page.globalVersion).toBe(3n);
    expect(page.keyVersions.map((kv) => kv.key)).toEqual(["m_second", "a_third", "z_first"]);
    expect(page.nextPageToken).toBe("");
  });

  it("list_should_paginate_by_creation_time_with_prefix", async () => {
    const c = client();
    await c.put([["pfx_z", "v", 0]], 0);
    await c.put([["pfx_a", "v", 0]], 1);
    await c.put([["other", "v", 0]], 2);
    await c.put([["pfx_m", "v", 0]], 3);
    const { pages, keys } = await c.listAll({ prefix: "pfx_", pageSize: 1 });
    expect(pages[0]!.globalVersion).toBe(4n);
    for (const page of pages.slice(1)) expect(page.globalVersion).toBeUndefined();
    for (const page of pages) expect(page.keyVersions.length).toBeLessThanOrEqual(1);
    expect(keys.map((kv) => kv.key)).toEqual(["pfx_m", "pfx_a", "pfx_z"]);
  });

  it("an overwrite, unconditional ones included, keeps a key's place in the creation order", async () => {
    const c = client();
    for (const key of ["a", "b", "c"]) await c.put([[key, "v1", 0]]);
    await c.put([["a", "v2", -1]]);
    await c.put([["b", "v2", 1]]);
    const page = await c.list();
    expect(page.keyVersions.map((kv) => [kv.key, kv.version])).toEqual([["c", 1n], ["b", 2n], ["a", 1n]]);
  });

  it("the key prefix is literal: %, _ and \\ are ordinary characters", async () => {
    const c = client();
    for (const key of ["a%b", "axb", "a_c", "azc", "a\\d", "a\\\\d"]) await c.put([[key, "v", 0]]);
    const keys = async (prefix: string): Promise<string[]> => (await c.listAll({ prefix })).keys.map((kv) => kv.key).sort();
    expect(await keys("a%")).toEqual(["a%b"]);
    expect(await keys("a_")).toEqual(["a_c"]);
    expect(await keys("a\\")).toEqual(["a\\\\d", "a\\d"].sort());
  });

  it("page_size: absent means 100, larger is capped at 100, 0 gives an empty last page, negative is refused", async () => {
    const c = client();
    await c.put(Array.from({ length: 150 }, (_, i) => [`k${i}`, "v", 0] as const), 0);
    const byDefault = await c.list();
    expect(byDefault.keyVersions.length).toBe(100);
    expect(byDefault.nextPageToken).not.toBe("");
    expect((await c.list({ pageSize: 1000 })).keyVersions.length).toBe(100);
    const empty = await c.list({ pageSize: 0 });
    expect([empty.keyVersions.length, empty.nextPageToken, empty.globalVersion]).toEqual([0, "", 1n]);
    await refused(c.list({ pageSize: -1 }), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
  });

  it("next_page_token is present and \"\" on the last page, also of an empty store", async () => {
    const c = client();
    const empty = await c.list();
    expect([empty.keyVersions.length, empty.nextPageToken, empty.globalVersion]).toEqual([0, "", 0n]);
    await c.put([["a", "v", 0], ["b", "v", 0], ["c", "v", 0]]);
    const first = await c.list({ pageSize: 2 });
    expect(first.keyVersions.length).toBe(2);
    expect(first.nextPageToken).not.toBe("");
    const last = await c.list({ pageSize: 2, pageToken: first.nextPageToken! });
    expect(last.keyVersions.map((kv) => kv.key)).toEqual(["a"]);
    expect(last.nextPageToken).toBe("");
    expect(last.globalVersion).toBeUndefined();
  });

  it("a malformed page token, or one of another prefix or store, is refused with 400", async () => {
    const c = client();
    await c.put([["p1", "v", 0], ["p2", "v", 0], ["q1", "v", 0]]);
    const first = await c.list({ pageSize: 1, prefix: "p" });
    expect(first.nextPageToken).not.toBe("");
    await refused(c.list({ pageToken: "not a token" }), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
    await refused(c.list({ pageToken: "eyJ2IjoxfQ" }), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
    await refused(c.list({ pageToken: first.nextPageToken!, prefix: "q" }), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
    const other = client();
    await other.put([["p1", "v", 0]]);
    await refused(other.list({ pageToken: first.nextPageToken!, prefix: "p" }), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
  });

  it("a listing with a rare prefix reads a bounded number of keys per request and still finds every match", async () => {
    const c = client();
    const items: Item[] = Array.from({ length: 2500 }, (_, i) => [`other${i}`, "v", 0] as const);
    await c.put([["rare_old", "v", 0]]);
    await c.put(items.slice(0, 1000));
    await c.put(items.slice(1000, 2000));
    await c.put(items.slice(2000));
    await c.put([["rare_new", "v", 0]]);
    const { pages, keys } = await c.listAll({ prefix: "rare" });
    expect(keys.map((kv) => kv.key)).toEqual(["rare_new", "rare_old"]);
    // 2,502 keys at most 1,000 a request: at least three requests.
    expect(pages.length).toBeGreaterThanOrEqual(3);
  });

  it("more than 1000 items in one put is refused with 400, 1000 are accepted", async () => {
    const c = client();
    const items = (n: number): Item[] => Array.from({ length: n }, (_, i) => [`k${i}`, "v", 0] as const);
    await refused(c.put(items(1001)), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
    await refused(c.put(items(600), undefined, items(401).map(([key]) => [`d${key}`, -1] as const)), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
    await c.put(items(1000));
    expect((await c.get("k999")).version).toBe(1n);
  });

  it("a version below -1 is refused with 400", async () => {
    const c = client();
    await refused(c.put([["k", "a", -2]]), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
    await refused(c.delete("k", -2), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
  });

  // vss-server runs the items of one put in order in one transaction (transaction_items, the
  // global version, then delete_items; rust/impls/src/postgres_store.rs `put`): a later item of a
  // key sees what the earlier ones did, and one that matches nothing fails the whole request.
  it("a key twice in one put applies in order, as vss-server does", async () => {
    const c = client();
    await c.put([["k", "a", 0], ["k", "b", 1]]);
    expect([text((await c.get("k")).value), (await c.get("k")).version]).toEqual(["b", 2n]);
    await c.put([["k", "c", -1], ["k", "d", 1], ["k", "e", 2]]);
    expect([text((await c.get("k")).value), (await c.get("k")).version]).toEqual(["e", 3n]);
    // The second item expects the version the first leaves (1), not the stored one: conflict, nothing applies.
    await refused(c.put([["k", "x", 3], ["k", "y", 3]]), 409, ErrorCode.CONFLICT_EXCEPTION);
    await refused(c.put([["fresh", "x", 0], ["fresh", "y", 0]]), 409, ErrorCode.CONFLICT_EXCEPTION);
    expect([text((await c.get("k")).value), (await c.get("k")).version]).toEqual(["e", 3n]);
    await refused(c.get("fresh"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
  });

  it("a put and a delete of one key apply in order: puts first, then deletes", async () => {
    const c = client();
    await c.put([["gone", "a", 0]], undefined, [["gone", 1]]);
    await refused(c.get("gone"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
    await c.put([["kept", "a", 0]]);
    await c.put([["kept", "b", 1]], undefined, [["kept", 2]]);
    await refused(c.get("kept"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
    // The delete expects the version the put leaves: 1 never matches after a put of version 0 (→ 1)… 
    await c.put([["again", "a", 0]]);
    await refused(c.put([["again", "b", 1]], undefined, [["again", 1]]), 409, ErrorCode.CONFLICT_EXCEPTION);
    expect([text((await c.get("again")).value), (await c.get("again")).version]).toEqual(["a", 1n]);
    // …and a delete of -1 after a put of the same key always finds it.
    await c.put([["new", "a", 0]], undefined, [["new", -1]]);
    await refused(c.get("new"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
  });

  it("a present but empty page_token is refused with 400; only an absent one is the first page", async () => {
    const c = client();
    await c.put([["p", "a", 0]]);
    await refused(c.list({ pageToken: "" }), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
    expect((await c.list()).keyVersions.map((kv) => kv.key)).toEqual(["p"]);
  });

  it("an empty key is refused with 400 (stricter than vss-server on purpose, contract §6.5)", async () => {
    const c = client();
    await refused(c.put([["", "a", -1]]), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
    await refused(c.get(""), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
  });

  it("keys of 600 characters with + / = work everywhere; 601 characters or control characters are refused", async () => {
    const c = client();
    const key = (fill: string): string => `${fill}+/=`.repeat(150).slice(0, 600);
    const long = key("Ab");
    const other = key("Cd");
    expect(long.length).toBe(600);
    await c.put([[long, "v1", 0], [other, "w1", 0]], 0);
    await c.put([[long, "v2", 1]], 1, [[other, 1]]);
    const stored = await c.get(long);
    expect([stored.key, stored.version, text(stored.value)]).toEqual([long, 2n, "v2"]);
    const listed = await c.listAll({ prefix: long.slice(0, 300) });
    expect(listed.keys.map((kv) => [kv.key, kv.version])).toEqual([[long, 2n]]);
    await c.delete(long, 2);
    await refused(c.get(long), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
    // Characters, not bytes: 600 of them in any script.
    await c.put([["é".repeat(600), "v", 0]]);
    await refused(c.put([[`${long}x`, "v", 0]]), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
    await refused(c.put([["a\nb", "v", 0]]), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
    await refused(c.get(`${long}x`), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
    await refused(c.put([["", "v", 0]]), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
  });

  it("store ids: up to 120 characters, empty allowed, control characters refused", async () => {
    const empty = new VssTestClient(vss.url, "");
    await empty.put([["k", "v", -1]]);
    expect((await empty.get("k")).version).toBe(1n);
    const longest = new VssTestClient(vss.url, "s".repeat(120));
    await longest.put([["k", "v", 0]]);
    await refused(new VssTestClient(vss.url, "s".repeat(121)).get("k"), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
    await refused(new VssTestClient(vss.url, "a\u0000b").get("k"), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
  });

  it("a 10 MiB value round-trips", async () => {
    const c = client();
    const value = randomBytes(10 * 1024 * 1024);
    await c.put([["big", value, -1]]);
    const stored = await c.get("big");
    expect(stored.version).toBe(1n);
    expect(Buffer.from(stored.value).equals(value)).toBe(true);
  });

  it("16 concurrent conditional puts on one key: exactly one succeeds", async () => {
    const c = client();
    const race = async (version: number): Promise<PromiseSettledResult<void>[]> =>
      Promise.allSettled(Array.from({ length: 16 }, (_, i) => c.put([["contended", `writer${i}`, version]])));
    for (const version of [0, 1]) {
      const results = await race(version);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      for (const r of results) if (r.status === "rejected") expect((r.reason as { status: number }).status).toBe(409);
      expect((await c.get("contended")).version).toBe(BigInt(version + 1));
    }
  });

  it("16 concurrent global-version puts on different keys: exactly one succeeds", async () => {
    const c = client();
    const results = await Promise.allSettled(Array.from({ length: 16 }, (_, i) => c.put([[`k${i}`, "v", 0]], 0)));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect((await c.get("global_version")).version).toBe(1n);
    expect((await c.listAll()).keys).toHaveLength(1);
  });

  it("two store ids of one user are isolated", async () => {
    const a = client();
    const b = client();
    await a.put([["k", "from a", 0]], 0);
    await refused(b.get("k"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
    await b.put([["k", "from b", 0]]);
    expect(text((await a.get("k")).value)).toBe("from a");
    expect((await b.get("global_version")).version).toBe(0n);
    expect((await b.listAll()).keys.map((kv) => kv.key)).toEqual(["k"]);
  });

  it("VSS keys never meet gRPC keys: the open user's store id \"default\" is not the default store", async () => {
    const c = new VssTestClient(vss.url, "default");
    await c.put([["shared_name", "vss", 0]]);
    await vss.tiers.write({ primaryNamespace: "", secondaryNamespace: "", key: "shared_name" }, new TextEncoder().encode("grpc"));
    expect(text((await c.get("shared_name")).value)).toBe("vss");
    expect(text(await vss.tiers.read({ primaryNamespace: "", secondaryNamespace: "", key: "shared_name" }))).toBe("grpc");
    const internal = await vss.tiers.readVersioned({ storeId: vssStoreId("default", "default"), primaryNamespace: "", secondaryNamespace: "", key: "shared_name" });
    expect(text(internal.value)).toBe("vss");
    // An LDK-named store refuses VSS-shaped keys; a VSS store takes them.
    const refusal = await vss.tiers.write({ primaryNamespace: "", secondaryNamespace: "", key: "a+b" }, new Uint8Array()).catch((e: unknown) => e);
    expect((refusal as StoreError).code).toBe("invalid-argument");
  });
});

describe("VSS users", () => {
  let vss: VssHarness;
  beforeAll(async () => {
    // A stand-in authenticator: "Bearer <name>" is user <name>.
    vss = await startVssHarness({
      authenticate: async ({ authorization }) => {
        const name = /^Bearer (\w+)$/.exec(authorization ?? "")?.[1];
        if (name === undefined) throw new StoreError("unauthenticated", "who are you?");
        return { name, storeId: name === "reader" ? "alice" : name, roles: new Set([name === "reader" ? "read" : "write"]) };
      },
    });
  });
  afterAll(() => vss.close());

  const as = (user: string, storeId: string): VssTestClient => new VssTestClient(vss.url, storeId, () => ({ authorization: `Bearer ${user}` }));

  it("two users with the same store id are isolated", async () => {
    await as("alice", "wallet").put([["k", "alice's", 0]], 0);
    await refused(as("bob", "wallet").get("k"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
    await as("bob", "wallet").put([["k", "bob's", 0]], 0);
    expect(text((await as("alice", "wallet").get("k")).value)).toBe("alice's");
    expect((await as("bob", "wallet").listAll()).keys.map((kv) => kv.key)).toEqual(["k"]);
    await as("bob", "wallet").delete("k", -1);
    expect((await as("alice", "wallet").get("k")).version).toBe(1n);
  });

  it("a user with the read role may read and list but not put or delete (401)", async () => {
    await as("alice", "ro").put([["k", "v", 0]]);
    expect((await as("reader", "ro").get("k")).version).toBe(1n);
    expect((await as("reader", "ro").listAll()).keys).toHaveLength(1);
    await refused(as("reader", "ro").put([["k", "v2", 1]]), 401, ErrorCode.AUTH_EXCEPTION);
    await refused(as("reader", "ro").delete("k", -1), 401, ErrorCode.AUTH_EXCEPTION);
    expect((await as("alice", "ro").get("k")).version).toBe(1n);
  });

  it("no credentials: 401 with an encoded ErrorResponse", async () => {
    await refused(new VssTestClient(vss.url, "wallet").get("k"), 401, ErrorCode.AUTH_EXCEPTION);
  });
});
