// The ChangeFeed in process, over a memory store: a caught-up watcher joins its store's shared
// tail, one that stops taking changes is dropped from it after a page and reads the log itself,
// and neither misses or repeats a change; prefixes filter; the feed's close ends every watch.
import { describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/store/memory.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { Change, KVStore, ChangeLog } from "../../src/store/types.js";
import { StoreError } from "../../src/store/errors.js";
import { ChangeFeed, type WatchEvent } from "../../src/watch/change-feed.js";

const bytes = (value: string): Uint8Array => new TextEncoder().encode(value);
const at = (primaryNamespace: string, key: string) => ({ primaryNamespace, secondaryNamespace: "", key });

/** The next change of a watch, skipping progress. */
async function nextChange(events: AsyncIterator<WatchEvent>): Promise<WatchEvent & { kind: "change" }> {
  for (;;) {
    const event = (await events.next()).value as WatchEvent;
    if (event.kind === "change") return event;
  }
}

describe("ChangeFeed", () => {
  it("a watcher that pauses while 1,000 changes pass (past the tail's page) still gets each once, in order", async () => {
    const store = new MemoryStore();
    const feed = new ChangeFeed(store, { progressIntervalMs: 50 });
    const abort = new AbortController();
    const events = feed.watch({ storeId: "default", start: 0n, values: true }, abort.signal)[Symbol.asyncIterator]();
    // From now: a progress first, then the watcher is caught up and on the tail.
    expect(((await events.next()).value as WatchEvent).kind).toBe("progress");
    const first = events.next();
    await store.write(at("p", "k0"), bytes("v0"));
    const seqs: bigint[] = [];
    const event = (await first).value as WatchEvent;
    if (event.kind === "change") seqs.push(event.change.seq);
    // It takes nothing while 1,000 writes commit one by one.
    for (let i = 1; i <= 1000; i++) await store.write(at("p", `k${i % 50}`), bytes(`v${i}`));
    while (seqs.length < 1001) {
      const next = (await events.next()).value as WatchEvent;
      if (next.kind === "change") seqs.push(next.change.seq);
    }
    expect(seqs).toEqual(Array.from({ length: 1001 }, (_, i) => BigInt(i + 1)));
    abort.abort();
    await events.return(undefined);
    feed.close();
  });

  it("delivers only its prefix's changes, and a values-less watcher gets no values", async () => {
    const store = new MemoryStore();
    const feed = new ChangeFeed(store, { progressIntervalMs: 50 });
    const abort = new AbortController();
    const mine = feed.watch({ storeId: "default", start: 0n, values: false, primaryNamespace: "mine" }, abort.signal)[Symbol.asyncIterator]();
    const all = feed.watch({ storeId: "default", start: 0n, values: true }, abort.signal)[Symbol.asyncIterator]();
    await mine.next();
    await all.next();
    const mineNext = nextChange(mine);
    await store.write(at("other", "a"), bytes("x"));
    await store.write(at("mine", "b"), bytes("y"));
    const got = await mineNext;
    expect(got).toMatchObject({ kind: "change", change: { seq: 2n, key: "b" } });
    expect(got.change.value).toBeUndefined();
    const everything: WatchEvent[] = [await nextChange(all), await nextChange(all)];
    expect(everything.map((e) => e.kind === "change" && [e.change.key, new TextDecoder().decode(e.change.value)])).toEqual([
      ["a", "x"],
      ["b", "y"],
    ]);
    feed.close();
    // Closing ends each watch with where to resume.
    await expect(mine.next()).rejects.toThrow(StoreError);
    abort.abort();
  });

  // SQLite hands each commit's changes to the tail; memory makes the tail read them. Either way
  // each watcher gets exactly the log's changes it matches, while group commits of many writers
  // land and a watcher that wants values joins and leaves (values-less commits are then read).
  for (const [name, open] of [
    ["memory", () => new MemoryStore()],
    ["sqlite", () => new SqliteStore(":memory:")],
  ] as const) {
    it(`gives each caught-up watcher exactly the log's changes it matches (${name})`, async () => {
      const store: KVStore & ChangeLog = open();
      const feed = new ChangeFeed(store, { progressIntervalMs: 10_000 });
      const abort = new AbortController();
      const targets = [{}, { primaryNamespace: "a" }, { primaryNamespace: "a", secondaryNamespace: "x" }, { primaryNamespace: "b" }];
      const watches = targets.map((target) => feed.watch({ storeId: "default", start: 0n, values: false, ...target }, abort.signal)[Symbol.asyncIterator]());
      for (const watch of watches) await watch.next(); // each is caught up from now
      const writes = 600;
      const collected = targets.map(() => [] as Change[]);
      // Each watcher takes changes as they come, so it stays on the tail while the writers run.
      const collecting = watches.map(async (watch, i) => {
        for (let next = await watch.next(); !next.done; next = await watch.next()) if (next.value.kind === "change") collected[i]!.push(next.value.change);
      });
      const expected = (i: number, change: Change): boolean => {
        const target: { primaryNamespace?: string; secondaryNamespace?: string } = targets[i]!;
        return (target.primaryNamespace === undefined || change.primaryNamespace === target.primaryNamespace) && (target.secondaryNamespace === undefined || change.secondaryNamespace === target.secondaryNamespace);
      };
      let issued = 0;
      const writers = Array.from({ length: 16 }, async () => {
        while (issued < writes) {
          const i = issued++;
          const ref = { primaryNamespace: ["a", "b", "c"][i % 3]!, secondaryNamespace: i % 2 === 0 ? "x" : "", key: `k${i % 40}` };
          if (i % 7 === 0) await store.remove(ref);
          else await store.write(ref, bytes(`v${i}`));
          if (i === 200) {
            // A watcher with values joins for a while: the tail reads commits meanwhile.
            const withValues = feed.watch({ storeId: "default", start: 0n, values: true }, abort.signal)[Symbol.asyncIterator]();
            await withValues.next();
            await nextChange(withValues);
            await withValues.return(undefined);
          }
        }
      });
      await Promise.all(writers);
      const log = (await store.readChanges({ storeId: "default", from: 1n, limit: 10_000, values: false })).changes;
      const wanted = targets.map((_, i) => log.filter((change) => expected(i, change)));
      for (let waited = 0; waited < 5000 && collected.some((got, i) => got.length < wanted[i]!.length); waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
      abort.abort();
      await Promise.all(collecting);
      expect(collected).toEqual(wanted);
      feed.close();
      await store.close();
    });
  }
});
