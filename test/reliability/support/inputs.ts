//! What the fuzzer sends: for each method's request message, random bytes, mutated valid
//! messages and structured cases (extreme versions and page sizes, forged page tokens, bad names,
//! over-size values), all drawn from a seeded PRNG. `invalidFor` gives only requests the server
//! must refuse, for callers allowed to write.

import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { encodeKeyCursor, encodePageToken } from "../../../src/store/page-token.js";
import type { Prng } from "./prng.js";
import { hugeLength, lenField, MUTATORS, tag, varint, WIRE } from "./wire.js";

export type Init = Record<string, unknown>;

export interface FuzzInput {
  /** What kind of input it is (for the histogram): "random bytes", "bit flips", "structured: ...". */
  readonly kind: string;
  readonly bytes: Buffer;
  /** The message it was built from, when structured (Connect JSON sends this). */
  readonly init?: Init;
}

/** Real page tokens and cursors of the seeded server, for forged-token cases. */
export interface TokenCorpus {
  /** A ListPage token of tenant-a's namespace pages/sub. */
  readonly pages: string;
  /** A ListPage token of tenant-a's namespace other. */
  readonly otherNamespace: string;
  /** A ListPage token of tenant-b's namespace pages/sub. */
  readonly otherStore: string;
  /** A ListAllKeys cursor of tenant-a. */
  readonly cursor: string;
  /** A ListAllKeys cursor of tenant-b. */
  readonly otherStoreCursor: string;
}

export const MAX_VERSION = (1n << 63n) - 1n;
export const UINT64_MAX = (1n << 64n) - 1n;
const LDK = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/** A namespace or key name: mostly valid ones the server holds, else edge and bad ones. */
export function name(prng: Prng, valid: readonly string[]): string {
  return prng.weighted<() => string>([
    [6, () => prng.pick(valid)],
    [2, () => ""],
    [2, () => prng.string(prng.int(1, 20), LDK)],
    [1, () => prng.string(120, LDK)],
    [1, () => prng.string(121, LDK)],
    [1, () => prng.string(prng.int(122, 5000), LDK)],
    [2, () => prng.pick(["a/b", "../etc", "é", "\u0000", "key with space", "%2F", "😀", "\u202e", "k\n", "\ud7ff", "*", "."])],
  ])();
}

export function storeId(prng: Prng): string {
  return prng.weighted<() => string>([
    [8, () => ""],
    [2, () => "tenant-a"],
    [2, () => prng.pick(["tenant-b", "ops", "default", "vss:tenant-a:wallet", "vss:", "TENANT-A"])],
    [1, () => prng.pick(["\u0001", "a\u007fb", "x".repeat(257), "x".repeat(prng.int(300, 4000)), "tenant-a\u0000"])],
  ])();
}

/** Versions: 0 (unset), small, extremes (2^63-1, 2^63, 2^64-1) and random 64-bit ones. */
export function version(prng: Prng): bigint {
  return prng.weighted<() => bigint>([
    [3, () => 0n],
    [2, () => BigInt(prng.int(1, 1000))],
    [3, () => prng.pick([MAX_VERSION, MAX_VERSION + 1n, UINT64_MAX, UINT64_MAX - 1n, 1n << 62n])],
    [2, () => prng.bigint(64)],
  ])();
}

export function pageSize(prng: Prng): number {
  return prng.pick([0, 1, 2, 3, 7, 1000, 1001, -1, -2, -(2 ** 31), 2 ** 31 - 1, prng.int(-(2 ** 31), 2 ** 31 - 1)]);
}

function base64url(prng: Prng, length: number): string {
  return prng.string(length, `${LDK}`);
}

/** Page tokens: real, foreign (another namespace or store), forged and malformed. */
export function pageToken(prng: Prng, tokens: TokenCorpus, ns: { primaryNamespace: string; secondaryNamespace: string }): string {
  const json = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  return prng.weighted<() => string>([
    [2, () => ""],
    [2, () => tokens.pages],
    [2, () => prng.pick([tokens.otherNamespace, tokens.otherStore, tokens.cursor, tokens.otherStoreCursor])],
    [2, () => base64url(prng, prng.int(1, 200))],
    // Well-formed tokens of this namespace with huge or odd positions.
    [3, () => encodePageToken({ storeId: "tenant-a", ...ns }, prng.pick(["999999999999999", "9999999999999999", "18446744073709551615", "-1", "0", "1e308", "NaN", "", "1.5", " 1", "0x10", "١٢"]))],
    [1, () => encodePageToken({ storeId: "tenant-b", ...ns }, "1")],
    [2, () => json(prng.pick<unknown>([null, [], {}, "x", 1, { f: 1 }, { f: 2, n: "x", p: "1" }, { f: 1, n: 5, p: "1" }, { f: 1, n: "", p: {} }, [2, "tenant-a", "", "", ""], [2, "tenant-b", "", "", ""], [2, 1, 2, 3, 4], [3, "a", "b", "c", "d"]]))],
    [1, () => prng.pick(["%%%", "====", "a b", "\u00e9", "tok\u0000", "x".repeat(100_000)])],
  ])();
}

/** ListAllKeys cursors: real, another store's, forged. */
export function cursor(prng: Prng, tokens: TokenCorpus): string {
  return prng.weighted<() => string>([
    [2, () => ""],
    [2, () => tokens.cursor],
    [2, () => tokens.otherStoreCursor],
    [2, () => encodeKeyCursor({ storeId: prng.pick(["tenant-a", "tenant-b", "", "vss:x", "\u0001"]), primaryNamespace: prng.pick(["", "pages", "\uffff", "x".repeat(500)]), secondaryNamespace: prng.pick(["", "sub"]), key: prng.pick(["", "k1", "\uffff".repeat(3)]) })],
    [2, () => pageToken(prng, tokens, { primaryNamespace: "pages", secondaryNamespace: "sub" })],
  ])();
}

/** Values: empty, small, exactly the limit, just above it, far above it. */
export function value(prng: Prng, maxValueBytes: number): Uint8Array {
  return prng.weighted<() => Uint8Array>([
    [4, () => prng.bytes(prng.int(0, 32))],
    [1, () => new Uint8Array(maxValueBytes)],
    [2, () => new Uint8Array(maxValueBytes + 1)],
    [1, () => new Uint8Array(maxValueBytes * 2)],
  ])();
}

export interface ValueSpace {
  readonly primary: readonly string[];
  readonly secondary: readonly string[];
  readonly keys: readonly string[];
  readonly tokens: TokenCorpus;
  readonly maxValueBytes: number;
  readonly maxBatchItems: number;
}

function keyRef(prng: Prng, space: ValueSpace): Init {
  return { primaryNamespace: name(prng, space.primary), secondaryNamespace: name(prng, space.secondary), key: name(prng, space.keys), storeId: storeId(prng) };
}

function writeMutation(prng: Prng, space: ValueSpace): Init {
  return { value: value(prng, space.maxValueBytes), revision: prng.chance(0.2) ? version(prng) : 0n, exact: prng.chance(0.15) };
}

function mutation(prng: Prng, space: ValueSpace): Init {
  const kind = prng.weighted<Init | undefined>([
    [4, { case: "write", value: writeMutation(prng, space) }],
    [3, { case: "remove", value: { lazy: prng.chance(0.5) } }],
    [1, undefined],
  ]);
  return { ...keyRef(prng, space), version: version(prng), ...(kind !== undefined && { kind }) };
}

function batchSize(prng: Prng, space: ValueSpace): number {
  return prng.weighted([
    [1, 0],
    [6, prng.int(1, 5)],
    [1, space.maxBatchItems],
    [1, space.maxBatchItems + prng.int(1, 10)],
  ]);
}

function txnCheck(prng: Prng, space: ValueSpace): Init {
  const expect = prng.weighted<Init | undefined>([
    [2, { case: "absent", value: prng.chance(0.8) }],
    [2, { case: "present", value: prng.chance(0.8) }],
    [3, { case: "revision", value: version(prng) }],
    [1, undefined],
  ]);
  return { ...keyRef(prng, space), ...(expect !== undefined && { expect }) };
}

function txnOperation(prng: Prng, space: ValueSpace): Init {
  const kind = prng.weighted<Init | undefined>([
    [4, { case: "write", value: writeMutation(prng, space) }],
    [3, { case: "remove", value: { lazy: prng.chance(0.5) } }],
    [1, undefined],
  ]);
  return { ...keyRef(prng, space), ...(kind !== undefined && { kind }) };
}

/** A structured request of `method` (its local name) with edge values everywhere. */
export function structured(method: string, prng: Prng, space: ValueSpace): Init {
  switch (method) {
    case "read":
      return keyRef(prng, space);
    case "write":
      return { ...keyRef(prng, space), value: value(prng, space.maxValueBytes), version: version(prng) };
    case "remove":
      return { ...keyRef(prng, space), lazy: prng.chance(0.5), version: version(prng) };
    case "list":
      return { primaryNamespace: name(prng, space.primary), secondaryNamespace: name(prng, space.secondary), storeId: storeId(prng) };
    case "listPage": {
      const ns = { primaryNamespace: name(prng, space.primary), secondaryNamespace: name(prng, space.secondary) };
      return { ...ns, pageSize: pageSize(prng), pageToken: pageToken(prng, space.tokens, ns), storeId: storeId(prng) };
    }
    case "listAllKeys":
      return { pageSize: pageSize(prng), pageToken: cursor(prng, space.tokens), storeId: storeId(prng), allStores: prng.chance(0.3) };
    case "mutate":
      return { mutations: Array.from({ length: batchSize(prng, space) }, () => mutation(prng, space)) };
    case "txn": {
      const duplicate = prng.chance(0.15);
      const operations = Array.from({ length: batchSize(prng, space) }, () => txnOperation(prng, space));
      if (duplicate && operations.length > 0) operations.push({ ...operations[0]! });
      return { checks: Array.from({ length: prng.weighted([[2, 0], [4, prng.int(1, 4)], [1, space.maxBatchItems + 1]]) }, () => txnCheck(prng, space)), operations, version: version(prng) };
    }
    case "storeUsage":
      return { storeId: prng.pick(["", "tenant-a", "tenant-b", "ops", "nobody", "x".repeat(5000), "\u0001"]) };
    case "watch":
      return {
        primaryNamespace: name(prng, space.primary),
        secondaryNamespace: name(prng, space.secondary),
        storeId: storeId(prng),
        startSequence: prng.pick([0n, 1n, 2n, 1n << 40n, UINT64_MAX]),
        values: prng.chance(0.5),
        allStores: prng.chance(0.2),
        ...(prng.chance(0.2) && { starts: { [storeId(prng)]: prng.pick([0n, 1n, UINT64_MAX]) } }),
      };
    case "resync":
    case "backupStatus":
    case "snapshot":
      return {};
    default:
      throw new Error(`no structured cases for ${method}`);
  }
}

/** A valid request of each method, to mutate. */
export function validSample(method: string, prng: Prng, space: ValueSpace): Init {
  const ref = { primaryNamespace: "pages", secondaryNamespace: "sub", key: prng.pick(space.keys) };
  switch (method) {
    case "read":
      return ref;
    case "write":
      return { ...ref, value: prng.bytes(prng.int(1, 16)), version: 7n, storeId: "tenant-a" };
    case "remove":
      return { ...ref, lazy: true, version: 7n, storeId: "tenant-a" };
    case "list":
      return { primaryNamespace: "pages", secondaryNamespace: "sub", storeId: "tenant-a" };
    case "listPage":
      return { primaryNamespace: "pages", secondaryNamespace: "sub", pageSize: 3, pageToken: space.tokens.pages, storeId: "tenant-a" };
    case "listAllKeys":
      return { pageSize: 5, pageToken: space.tokens.cursor, storeId: "tenant-a" };
    case "mutate":
      return {
        mutations: [
          { ...ref, version: 9n, kind: { case: "write", value: { value: prng.bytes(4) } } },
          { ...ref, key: "other", storeId: "tenant-a", kind: { case: "remove", value: { lazy: true } } },
        ],
      };
    case "txn":
      return {
        checks: [{ ...ref, expect: { case: "revision", value: 1n } }, { ...ref, key: "absent", expect: { case: "absent", value: true } }],
        operations: [{ ...ref, kind: { case: "write", value: { value: prng.bytes(4) } } }, { ...ref, key: "gone", kind: { case: "remove", value: {} } }],
        version: 11n,
      };
    case "storeUsage":
      return { storeId: "tenant-a" };
    case "watch":
      return { primaryNamespace: "pages", secondaryNamespace: "sub", startSequence: 1n, values: true };
    case "resync":
    case "backupStatus":
    case "snapshot":
      return {};
    default:
      throw new Error(`no valid sample for ${method}`);
  }
}

export function encode(schema: DescMessage, init: Init): Buffer {
  const bytes = toBinary(schema, create(schema, init as MessageInitShape<DescMessage>));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Whether the server's decoder refuses `bytes` (it answers INVALID_ARGUMENT then). */
export function undecodable(schema: DescMessage, bytes: Uint8Array): boolean {
  try {
    fromBinary(schema, bytes);
    return false;
  } catch {
    return true;
  }
}

/** Hand-made wire cases: every field number of the schema with every wire type, huge lengths, invalid UTF-8. */
function wireCase(schema: DescMessage, prng: Prng): Buffer {
  const field = schema.fields.length > 0 ? prng.pick(schema.fields).number : 1;
  return prng.weighted<() => Buffer>([
    [2, () => Buffer.concat([tag(field, prng.pick([1, 3, 4, 5, 6, 7])), prng.bytes(prng.int(0, 9))])],
    [2, () => Buffer.concat([tag(field, WIRE.len), varint(hugeLength(prng)), prng.bytes(prng.int(0, 4))])],
    [1, () => Buffer.concat([tag(field, WIRE.varint), varint(UINT64_MAX)])],
    [1, () => lenField(field, prng.bytes(prng.int(0, 8)))],
    [1, () => Buffer.concat([tag(field, WIRE.len)])],
  ])();
}

/**
 * One fuzz input for `method`: random bytes, a mutated valid message, a structured case or a
 * hand-made wire case.
 */
export function fuzzInput(method: string, schema: DescMessage, prng: Prng, space: ValueSpace): FuzzInput {
  const family = prng.weighted<"random" | "mutated" | "structured" | "wire">([
    [2, "random"],
    [4, "mutated"],
    [3, "structured"],
    [1, "wire"],
  ]);
  switch (family) {
    case "random": {
      const length = prng.weighted([[6, prng.int(0, 64)], [3, prng.int(65, 1024)], [1, prng.int(1025, 16_384)]]);
      return { kind: "random bytes", bytes: prng.bytes(length) };
    }
    case "mutated": {
      const mutator = prng.pick(Object.keys(MUTATORS));
      const valid = encode(schema, validSample(method, prng, space));
      return { kind: mutator, bytes: MUTATORS[mutator]!(valid, schema, prng) };
    }
    case "structured": {
      const init = structured(method, prng, space);
      return { kind: "structured", bytes: encode(schema, init), init };
    }
    case "wire":
      return { kind: "wire type/length", bytes: wireCase(schema, prng) };
  }
}

/**
 * A request of `method` the server must refuse from a caller with the `write` role of tenant-a
 * (so the data cannot change): bytes that do not decode, or a structured request with at least
 * one aspect that is invalid on its own (bad name, out-of-range or future version, over-size value,
 * another store, mirroring fields, forged token, negative page size, over-size batch).
 */
export function invalidFor(method: string, schema: DescMessage, prng: Prng, space: ValueSpace): FuzzInput {
  if (prng.chance(0.5)) {
    for (;;) {
      const input = fuzzInput(method, schema, prng, space);
      if (input.init === undefined && undecodable(schema, input.bytes)) return input;
    }
  }
  const init = invalidStructured(method, prng, space);
  return { kind: "structured (invalid)", bytes: encode(schema, init), init };
}

/** A key reference with one aspect that alone makes it invalid (or not the writer's to touch). */
function badRef(prng: Prng, space: ValueSpace): Init {
  const good = { primaryNamespace: "pages", secondaryNamespace: "sub", key: prng.pick(space.keys), storeId: prng.pick(["", "tenant-a"]) };
  return prng.weighted<() => Init>([
    [2, () => ({ ...good, key: prng.pick(["", "a/b", "x".repeat(121), "é", "\u0000", "k k"]) })],
    [1, () => ({ ...good, primaryNamespace: prng.pick(["a/b", "x".repeat(121), "%"]) })],
    [1, () => ({ ...good, primaryNamespace: "", secondaryNamespace: "sub" })],
    [1, () => ({ ...good, secondaryNamespace: prng.pick(["x".repeat(200), "s/s"]) })],
    [2, () => ({ ...good, storeId: prng.pick(["tenant-b", "ops", "default", "vss:tenant-a:wallet", "x".repeat(300), "\u0001"]) })],
  ])();
}

/** A namespace pair with one aspect that alone makes it invalid (or not the writer's to read). */
function badNamespace(prng: Prng): Init {
  const good = { primaryNamespace: "pages", secondaryNamespace: "sub", storeId: prng.pick(["", "tenant-a"]) };
  return prng.weighted<() => Init>([
    [2, () => ({ ...good, primaryNamespace: prng.pick(["a/b", "x".repeat(121), "%", "é"]) })],
    [1, () => ({ ...good, primaryNamespace: "", secondaryNamespace: "sub" })],
    [1, () => ({ ...good, secondaryNamespace: prng.pick(["x".repeat(200), "s/s", "\u0000"]) })],
    [2, () => ({ ...good, storeId: prng.pick(["tenant-b", "ops", "default", "x".repeat(300), "\u0001"]) })],
  ])();
}

/** A version no write may carry: out of range, or far ahead of the server's clock. */
function badVersion(prng: Prng): bigint {
  return prng.pick([MAX_VERSION + 1n, UINT64_MAX, UINT64_MAX - 1n, MAX_VERSION, MAX_VERSION - 1n, 1n << 62n]);
}

function invalidStructured(method: string, prng: Prng, space: ValueSpace): Init {
  const good = (): Init => ({ primaryNamespace: "pages", secondaryNamespace: "sub", key: prng.pick(space.keys) });
  const tooBig = (): Uint8Array => new Uint8Array(space.maxValueBytes + prng.pick([1, 2, 1024, space.maxValueBytes]));
  /** A mutation (of Mutate) that fails on its own. */
  const badMutation = (): Init =>
    prng.weighted<() => Init>([
      [2, () => ({ ...badRef(prng, space), version: version(prng), kind: { case: "write", value: { value: prng.bytes(3) } } })],
      [1, () => ({ ...badRef(prng, space), kind: { case: "remove", value: {} } })],
      [1, () => ({ ...good(), version: badVersion(prng), kind: { case: prng.pick(["write", "remove"]), value: {} } })],
      [1, () => ({ ...good(), kind: { case: "write", value: { value: tooBig() } } })],
      [1, () => ({ ...good(), kind: { case: "write", value: { value: prng.bytes(2), exact: true } } })],
      [1, () => ({ ...good(), kind: { case: "write", value: { value: prng.bytes(2), revision: BigInt(prng.int(1, 9)) } } })],
      [1, () => ({ ...good() })],
    ])();
  const anyOp = (): Init => ({ ...good(), key: `t${prng.int(0, 1_000_000)}`, kind: prng.chance(0.5) ? { case: "write", value: { value: prng.bytes(2) } } : { case: "remove", value: {} } });
  switch (method) {
    case "write":
      return prng.weighted<() => Init>([
        [3, () => ({ ...badRef(prng, space), value: prng.bytes(4), version: prng.chance(0.5) ? 0n : BigInt(prng.int(1, 100)) })],
        [2, () => ({ ...good(), value: prng.bytes(4), version: badVersion(prng) })],
        [2, () => ({ ...good(), value: tooBig() })],
      ])();
    case "remove":
      return prng.weighted<() => Init>([
        [3, () => ({ ...badRef(prng, space), lazy: prng.chance(0.5) })],
        [2, () => ({ ...good(), version: badVersion(prng) })],
      ])();
    case "mutate":
      return prng.weighted<() => Init>([
        [4, () => ({ mutations: Array.from({ length: prng.int(1, 6) }, badMutation) })],
        // Over the batch limit: refused whole, whatever the mutations.
        [1, () => ({ mutations: Array.from({ length: space.maxBatchItems + prng.int(1, 5) }, anyOp) })],
      ])();
    case "txn": {
      const ops = Array.from({ length: prng.int(1, 4) }, anyOp);
      const checks = Array.from({ length: prng.int(0, 2) }, () => ({ ...good(), key: `c${prng.int(0, 1_000_000)}`, expect: { case: "absent", value: true } }));
      const broken = prng.weighted<() => Init>([
        [2, () => ({ checks, operations: [...ops, { ...badRef(prng, space), kind: { case: "remove", value: {} } }] })],
        [1, () => ({ checks: [...checks, { ...badRef(prng, space), expect: { case: "present", value: true } }], operations: ops })],
        [1, () => ({ checks, operations: ops, version: badVersion(prng) })],
        [1, () => ({ checks, operations: [...ops, { ...ops[0]! }] })],
        [1, () => ({ checks: [], operations: [] })],
        [1, () => ({ checks: [...checks, { ...good() }], operations: ops })],
        [1, () => ({ checks: [...checks, { ...good(), expect: { case: "revision", value: prng.pick([MAX_VERSION + 1n, UINT64_MAX]) } }], operations: ops })],
        [1, () => ({ checks, operations: [...ops, { ...good(), key: "unset-kind" }] })],
        [1, () => ({ checks, operations: [...ops, { ...good(), key: "big", kind: { case: "write", value: { value: tooBig() } } }] })],
        [1, () => ({ checks, operations: [...ops, { ...good(), key: "mirror", kind: { case: "write", value: { value: prng.bytes(1), revision: 5n } } }] })],
        [1, () => ({ checks, operations: Array.from({ length: space.maxBatchItems + 1 }, anyOp) })],
      ])();
      return broken;
    }
    case "read":
      return badRef(prng, space);
    case "list":
      return badNamespace(prng);
    case "listPage": {
      const ns = { primaryNamespace: "pages", secondaryNamespace: "sub" };
      return prng.weighted<() => Init>([
        [2, () => ({ ...ns, pageToken: prng.pick([space.tokens.otherNamespace, space.tokens.otherStore, space.tokens.cursor, encodePageToken({ storeId: "tenant-a", ...ns }, "9999999999999999"), encodePageToken({ storeId: "tenant-a", ...ns }, "-1"), base64url(prng, prng.int(1, 64))]) })],
        [1, () => ({ ...ns, pageSize: prng.pick([-1, -(2 ** 31)]) })],
        [1, () => badNamespace(prng)],
      ])();
    }
    case "listAllKeys":
      return prng.weighted<() => Init>([
        [2, () => ({ pageToken: prng.pick([space.tokens.otherStoreCursor, space.tokens.pages, base64url(prng, prng.int(1, 64))]) })],
        [1, () => ({ pageSize: prng.pick([-1, -(2 ** 31)]) })],
        [1, () => ({ allStores: true })],
        [1, () => ({ storeId: prng.pick(["tenant-b", "ops"]) })],
      ])();
    case "watch":
      return prng.weighted<() => Init>([
        [2, () => badNamespace(prng)],
        [1, () => ({ allStores: true })],
        [1, () => ({ allStores: true, storeId: "tenant-a" })],
        [1, () => ({ starts: { "tenant-a": 1n } })],
        // Ahead of the store's latest change: OUT_OF_RANGE.
        [1, () => ({ primaryNamespace: "pages", startSequence: prng.pick([1n << 40n, UINT64_MAX]) })],
      ])();
    case "storeUsage":
    case "resync":
    case "backupStatus":
    case "snapshot":
      // AdminService needs the admin role: every request of a writer is refused.
      return structured(method, prng, space);
    default:
      throw new Error(`no invalid cases for ${method}`);
  }
}
