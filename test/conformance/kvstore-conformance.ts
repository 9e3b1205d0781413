//! The behaviour every KVStore must have (SPEC §1–§3), written once and run against each
//! backend from a few lines of its own spec file.

import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { errorOf, walkPages } from "../support/store-assertions.js";
import type { KVStore, KeyRef, NamespaceRef } from "../../src/store/types.js";

export interface StoreUnderTest {
  readonly store: KVStore;
  /** Closes the store and opens the same data again (durable backends only). */
  readonly reopen?: () => Promise<KVStore>;
  /** Releases everything the harness made (servers, files). The current store included. */
  close(): Promise<void>;
}

export interface ConformanceOptions {
  /** ListPage order the backend documents. */
  readonly pageOrder: "newest-created-first" | "key-order";
  /** The harness can `reopen` the same data: persistence is tested. */
  readonly durable: boolean;
}

const ROOT: NamespaceRef = { primaryNamespace: "", secondaryNamespace: "" };
const NS: NamespaceRef = { primaryNamespace: "monitors", secondaryNamespace: "updates" };
const at = (ns: NamespaceRef, key: string): KeyRef => ({ ...ns, key });
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

export function describeConformance(
  name: string,
  open: () => Promise<StoreUnderTest>,
  options: ConformanceOptions,
): void {
  describe(`KVStore conformance: ${name}`, () => {
    let harness: StoreUnderTest;
    let store: KVStore;
    beforeEach(async () => {
      harness = await open();
      store = harness.store;
    });
    afterEach(async () => {
      await harness.close();
    });

    describe("read and write", () => {
      it("round-trips an empty value", async () => {
        await store.write(at(NS, "empty"), new Uint8Array());
        expect(await store.read(at(NS, "empty"))).toHaveLength(0);
      });

      it("round-trips every byte value", async () => {
        const value = Uint8Array.from({ length: 256 }, (_, i) => i);
        await store.write(at(NS, "binary"), value);
        expect(Buffer.from(await store.read(at(NS, "binary")))).toEqual(Buffer.from(value));
      });

      it("round-trips a 10 MiB value", async () => {
        const value = randomBytes(10 * 1024 * 1024);
        await store.write(at(NS, "big"), value);
        expect(Buffer.compare(Buffer.from(await store.read(at(NS, "big"))), value)).toBe(0);
      });

      it("answers not-found for an absent key", async () => {
        const error = await errorOf(store.read(at(NS, "absent")));
        expect(error.code).toBe("not-found");
        expect(error.message).toContain("monitors/updates/absent");
      });

      it("overwrites", async () => {
        await store.write(at(NS, "k"), bytes("one"));
        await store.write(at(NS, "k"), bytes("two"));
        expect(Buffer.from(await store.read(at(NS, "k"))).toString()).toBe("two");
      });

      it("keeps namespaces apart", async () => {
        const other = { primaryNamespace: "monitors", secondaryNamespace: "other" };
        await store.write(at(NS, "k"), bytes("a"));
        await store.write(at(other, "k"), bytes("b"));
        await store.write(at({ primaryNamespace: "monitors", secondaryNamespace: "" }, "k"), bytes("c"));
        expect(Buffer.from(await store.read(at(NS, "k"))).toString()).toBe("a");
        expect(Buffer.from(await store.read(at(other, "k"))).toString()).toBe("b");
        expect(await store.list(other)).toEqual(["k"]);
      });

      it("serves the root namespace", async () => {
        await store.write(at(ROOT, "manager"), bytes("m"));
        expect(Buffer.from(await store.read(at(ROOT, "manager"))).toString()).toBe("m");
        expect(await store.list(ROOT)).toEqual(["manager"]);
        expect((await store.listPage(ROOT)).keys).toEqual(["manager"]);
      });

      it("does not let a caller's buffer change the stored value afterwards", async () => {
        const value = bytes("original");
        await store.write(at(NS, "k"), value);
        value.fill(0);
        expect(Buffer.from(await store.read(at(NS, "k"))).toString()).toBe("original");
      });
    });

    describe("remove", () => {
      it("removes a key", async () => {
        await store.write(at(NS, "k"), bytes("v"));
        await store.remove(at(NS, "k"));
        expect((await errorOf(store.read(at(NS, "k")))).code).toBe("not-found");
        expect(await store.list(NS)).toEqual([]);
      });

      it("succeeds for an absent key", async () => {
        await store.remove(at(NS, "never-written"));
        await store.remove(at(NS, "never-written"), { lazy: true });
      });

      it("hides the value at once after a lazy remove, and a later write cancels it", async () => {
        await store.write(at(NS, "k"), bytes("v1"));
        await store.remove(at(NS, "k"), { lazy: true });
        expect((await errorOf(store.read(at(NS, "k")))).code).toBe("not-found");
        await store.write(at(NS, "k"), bytes("v2"));
        expect(Buffer.from(await store.read(at(NS, "k"))).toString()).toBe("v2");
        expect(await store.list(NS)).toEqual(["k"]);
      });
    });

    describe("list", () => {
      it("lists each key once, whatever was overwritten or removed", async () => {
        for (const key of ["a", "b", "c", "a", "b"]) await store.write(at(NS, key), bytes(key));
        await store.remove(at(NS, "c"));
        expect((await store.list(NS)).sort()).toEqual(["a", "b"]);
      });

      it("lists an unknown namespace as empty", async () => {
        expect(await store.list({ primaryNamespace: "nothing", secondaryNamespace: "here" })).toEqual([]);
        expect(await store.listPage({ primaryNamespace: "nothing", secondaryNamespace: "" })).toEqual({
          keys: [],
          nextPageToken: "",
        });
      });
    });

    describe("listPage", () => {
      it("walks 1,000 keys with page size 7, each key exactly once", async () => {
        const written = Array.from({ length: 1000 }, (_, i) => `key_${i}`);
        for (const key of written) await store.write(at(NS, key), bytes(key));
        const seen = await walkPages(store, NS, 7);
        expect(seen).toHaveLength(1000);
        expect(new Set(seen).size).toBe(1000);
        if (options.pageOrder === "newest-created-first") expect(seen).toEqual([...written].reverse());
        else expect(seen).toEqual([...written].sort());
      });

      it("uses the default page size when none is given", async () => {
        for (let i = 0; i < 5; i++) await store.write(at(NS, `k${i}`), bytes("v"));
        const page = await store.listPage(NS);
        expect(page.keys).toHaveLength(5);
        expect(page.nextPageToken).toBe("");
      });

      if (options.pageOrder === "newest-created-first") {
        it("keeps an overwritten key at its creation position", async () => {
          for (const key of ["a", "b", "c"]) await store.write(at(NS, key), bytes("1"));
          await store.write(at(NS, "a"), bytes("2"));
          expect(await walkPages(store, NS, 2)).toEqual(["c", "b", "a"]);
        });
      }

      it("resumes after the token's key when that key was removed", async () => {
        for (const key of ["a", "b", "c", "d", "e"]) await store.write(at(NS, key), bytes("v"));
        const first = await store.listPage(NS, { pageSize: 2 });
        await store.remove(at(NS, first.keys[1]!));
        const after: string[] = [];
        let token = first.nextPageToken;
        while (token !== "") {
          const page = await store.listPage(NS, { pageSize: 2, pageToken: token });
          after.push(...page.keys);
          token = page.nextPageToken;
        }
        expect([...first.keys, ...after].sort()).toEqual(["a", "b", "c", "d", "e"]);
        expect(after).toHaveLength(3);
      });

      it("rejects a malformed page token", async () => {
        for (const token of ["garbage", "%%%", Buffer.from('{"f":1}').toString("base64url")]) {
          const error = await errorOf(store.listPage(NS, { pageToken: token }));
          expect(error.code).toBe("invalid-argument");
          expect(error.message).toContain("page_token");
        }
      });

      it("rejects a page token from another namespace pair", async () => {
        for (let i = 0; i < 3; i++) await store.write(at(NS, `k${i}`), bytes("v"));
        const { nextPageToken } = await store.listPage(NS, { pageSize: 1 });
        expect(nextPageToken).not.toBe("");
        const error = await errorOf(store.listPage(ROOT, { pageToken: nextPageToken }));
        expect(error.code).toBe("invalid-argument");
        expect(error.message).toContain("page_token");
      });
    });

    describe("versions (SPEC §3)", () => {
      it("does not apply a write older than the stored version", async () => {
        await store.write(at(NS, "k"), bytes("new"), { version: 20n });
        await store.write(at(NS, "k"), bytes("stale"), { version: 10n });
        expect(Buffer.from(await store.read(at(NS, "k"))).toString()).toBe("new");
        await store.write(at(NS, "k"), bytes("newer"), { version: 30n });
        expect(Buffer.from(await store.read(at(NS, "k"))).toString()).toBe("newer");
      });

      it("does not apply a remove older than the stored version", async () => {
        await store.write(at(NS, "k"), bytes("kept"), { version: 20n });
        await store.remove(at(NS, "k"), { version: 10n });
        expect(Buffer.from(await store.read(at(NS, "k"))).toString()).toBe("kept");
        await store.remove(at(NS, "k"), { version: 21n });
        expect((await errorOf(store.read(at(NS, "k")))).code).toBe("not-found");
      });
    });

    describe("readVersioned and listAllKeys", () => {
      it("returns the version that wrote the value", async () => {
        await store.write(at(NS, "k"), bytes("v"), { version: 42n });
        const { value, version } = await store.readVersioned(at(NS, "k"));
        expect(Buffer.from(value).toString()).toBe("v");
        expect(version).toBe(42n);
        expect((await errorOf(store.readVersioned(at(NS, "absent")))).code).toBe("not-found");
      });

      it("keeps versions above 2^53 exact", async () => {
        const version = (1n << 62n) + 1n;
        await store.write(at(NS, "k"), bytes("v"), { version });
        expect((await store.readVersioned(at(NS, "k"))).version).toBe(version);
        expect((await store.listAllKeys())[0]!.version).toBe(version);
      });

      it("walks every key of every namespace in (primary, secondary, key) order", async () => {
        const refs = [
          at(ROOT, "manager"),
          at(NS, "b"),
          at(NS, "a"),
          at({ primaryNamespace: "monitors", secondaryNamespace: "" }, "z"),
          at({ primaryNamespace: "zeta", secondaryNamespace: "x" }, "k"),
          at({ primaryNamespace: "alpha", secondaryNamespace: "" }, "k"),
        ];
        for (const [i, ref] of refs.entries()) await store.write(ref, bytes("v"), { version: BigInt(i + 1) });
        await store.remove(at(NS, "b"));
        const walked: Array<{ path: string; version: bigint }> = [];
        let after: KeyRef | undefined;
        for (let pages = 0; pages < 100; pages++) {
          const page = await store.listAllKeys({ after, limit: 2 });
          walked.push(...page.map((k) => ({ path: `${k.primaryNamespace}|${k.secondaryNamespace}|${k.key}`, version: k.version })));
          if (page.length < 2) break;
          after = page.at(-1);
        }
        expect(walked).toEqual([
          { path: "||manager", version: 1n },
          { path: "alpha||k", version: 6n },
          { path: "monitors||z", version: 4n },
          { path: "monitors|updates|a", version: 3n },
          { path: "zeta|x|k", version: 5n },
        ]);
      });

      it("lists no keys for an empty store", async () => {
        expect(await store.listAllKeys()).toEqual([]);
      });
    });

    describe("validation (SPEC §1)", () => {
      const bad: Array<[string, KeyRef]> = [
        ["empty key", at(NS, "")],
        ["slash in key", at(NS, "a/b")],
        ["space in namespace", at({ primaryNamespace: "a b", secondaryNamespace: "" }, "k")],
        ["121-character key", at(NS, "k".repeat(121))],
        ["secondary without primary", at({ primaryNamespace: "", secondaryNamespace: "s" }, "k")],
      ];
      for (const [what, ref] of bad) {
        it(`rejects ${what} in every operation and changes nothing`, async () => {
          const errors = await Promise.all([
            errorOf(store.write(ref, bytes("v"))),
            errorOf(store.read(ref)),
            errorOf(store.remove(ref)),
          ]);
          for (const error of errors) expect(error.code).toBe("invalid-argument");
          if (ref.key !== "" && !ref.key.includes("/") && ref.key.length <= 120) {
            expect((await errorOf(store.list(ref))).code).toBe("invalid-argument");
          }
          expect(await store.list(NS)).toEqual([]);
        });
      }

      it("accepts 120-character names", async () => {
        const long = "x".repeat(120);
        const ref = at({ primaryNamespace: long, secondaryNamespace: long }, long);
        await store.write(ref, bytes("v"));
        expect(await store.list(ref)).toEqual([long]);
      });
    });

    if (options.durable) {
      it("keeps data across close and reopen", async () => {
        await store.write(at(NS, "k"), bytes("durable"));
        await store.write(at(ROOT, "r"), bytes("root"));
        store = await harness.reopen!();
        expect(Buffer.from(await store.read(at(NS, "k"))).toString()).toBe("durable");
        expect(await store.list(ROOT)).toEqual(["r"]);
      });
    }
  });
}
