// contract §1 over the wire: every invalid request gets INVALID_ARGUMENT with a useful message (and no
// stack trace) and changes nothing; the valid requests around the limits are accepted.
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { create, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { KVStoreService } from "../../gen/tierkv/v1/kvstore_pb.js";
import { grpcClientConstructor } from "../../src/rpc/service-definition.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import { HybridClock } from "../../src/tier/hybrid-clock.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

type Methods = (typeof KVStoreService)["method"];
type Method = keyof Methods;
type RawUnary = (
  request: unknown,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

const MAX_VALUE_BYTES = 1024;
const MAX_VERSION = (1n << 63n) - 1n;

let server: TestServer;
let raw: grpc.Client;
let dbPath: string;
/** What the good requests wrote: `primary/secondary/key` → value as hex. The store must hold exactly this. */
const written = new Map<string, string>();

/** One RPC through a raw grpc-js client, so the TypeScript client's own validation is bypassed. */
function call<M extends Method>(method: M, init: MessageInitShape<Methods[M]["input"]>): Promise<MessageShape<Methods[M]["output"]>> {
  const request = create(KVStoreService.method[method].input, init);
  const unary = (raw as unknown as Record<Method, RawUnary>)[method].bind(raw);
  return new Promise((resolve, reject) => {
    unary(request, { deadline: Date.now() + 20_000 }, (error, response) =>
      error ? reject(error) : resolve(response as MessageShape<Methods[M]["output"]>),
    );
  });
}

/** A good write, remembered so the final contents of the store can be checked. */
async function goodWrite(primaryNamespace: string, secondaryNamespace: string, key: string, value: Uint8Array): Promise<void> {
  await call("write", { primaryNamespace, secondaryNamespace, key, value });
  written.set(`${primaryNamespace}/${secondaryNamespace}/${key}`, Buffer.from(value).toString("hex"));
}

/** Asserts the call fails with INVALID_ARGUMENT and a message matching every pattern, without a stack trace. */
async function expectInvalid<M extends Method>(
  method: M,
  init: MessageInitShape<Methods[M]["input"]>,
  ...mentions: (string | RegExp)[]
): Promise<void> {
  const error = await call(method, init).then(
    () => undefined,
    (e: unknown) => e as grpc.ServiceError,
  );
  expect(error, `${method} ${JSON.stringify(init, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v))} succeeded`).toBeDefined();
  expect(error!.code, error!.details).toBe(grpc.status.INVALID_ARGUMENT);
  for (const mention of mentions) {
    if (typeof mention === "string") expect(error!.details).toContain(mention);
    else expect(error!.details).toMatch(mention);
  }
  expect(error!.details).not.toContain("    at ");
}

/** Every row of the SQLite file, read behind the server's back. */
function storeContents(): Map<string, string> {
  const db = new Database(dbPath, { readonly: true });
  try {
    const rows = db
      .prepare("SELECT primary_namespace AS p, secondary_namespace AS s, key AS k, hex(value) AS v FROM kv")
      .all() as { p: string; s: string; k: string; v: string }[];
    return new Map(rows.map((r) => [`${r.p}/${r.s}/${r.k}`, r.v.toLowerCase()]));
  } finally {
    db.close();
  }
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const field = (name: string): RegExp => new RegExp(`\\b${name}\\b`);

beforeAll(async () => {
  dbPath = join(tempDir(), "kv.db");
  // The server's own store, the tiered store, validates; its clock admits any version ahead, so
  // the range of versions is what the version tests meet, not the clock's skew.
  const clock = new HybridClock(Date.now, Number.MAX_SAFE_INTEGER);
  server = await startTestServer(new TierStore({ primary: new SqliteStore(dbPath), clock }), { maxValueBytes: MAX_VALUE_BYTES });
  raw = new (grpcClientConstructor(KVStoreService))(server.address, grpc.credentials.createInsecure());
  // Keys already present, so a bad request that wrongly changed or removed them would show.
  await goodWrite("ns", "sub", "seed", bytes("seed"));
  await goodWrite("ns", "sub", "second", bytes("second"));
  await goodWrite("", "", "manager", bytes("root"));
});

afterEach(() => {
  expect(storeContents()).toEqual(written);
});

afterAll(async () => {
  raw?.close();
  await server?.close();
  removeTempDirs();
});

// The characters LDK's rules forbid, one of each kind.
const BAD_CHARACTERS: Record<string, string> = {
  space: " ",
  slash: "/",
  backslash: "\\",
  dot: ".",
  colon: ":",
  percent: "%",
  asterisk: "*",
  "non-ASCII letter": "é",
  emoji: "😀",
  NUL: "\0",
  newline: "\n",
  tab: "\t",
};

describe("bad characters", () => {
  for (const [kind, char] of Object.entries(BAD_CHARACTERS)) {
    it(`rejects a ${kind} in every name of every RPC`, async () => {
      const bad = `a${char}b`;
      // The message names the field, the offending character and what is allowed.
      const mentions = (name: string) => [field(name), JSON.stringify(char), "A-Z a-z 0-9 _ -"];
      for (const [name, ref] of [
        ["primary_namespace", { primaryNamespace: bad, secondaryNamespace: "sub", key: "seed" }],
        ["secondary_namespace", { primaryNamespace: "ns", secondaryNamespace: bad, key: "seed" }],
        ["key", { primaryNamespace: "ns", secondaryNamespace: "sub", key: bad }],
      ] as const) {
        await expectInvalid("write", { ...ref, value: bytes("overwritten") }, ...mentions(name));
        await expectInvalid("read", ref, ...mentions(name));
        await expectInvalid("remove", ref, ...mentions(name));
        if (name !== "key") {
          const ns = { primaryNamespace: ref.primaryNamespace, secondaryNamespace: ref.secondaryNamespace };
          await expectInvalid("list", ns, ...mentions(name));
          await expectInvalid("listPage", ns, ...mentions(name));
        }
      }
    });
  }

  it("rejects a bad character in the root namespace's key too", async () => {
    await expectInvalid("write", { key: "net work", value: bytes("x") }, field("key"), '" "');
    await expectInvalid("read", { key: "manager." }, field("key"), '"."');
  });
});

describe("name length", () => {
  const long = "a".repeat(121);

  it("rejects 121 characters in each name of every RPC, naming the field and the limit", async () => {
    for (const [name, ref] of [
      ["primary_namespace", { primaryNamespace: long, secondaryNamespace: "sub", key: "seed" }],
      ["secondary_namespace", { primaryNamespace: "ns", secondaryNamespace: long, key: "seed" }],
      ["key", { primaryNamespace: "ns", secondaryNamespace: "sub", key: long }],
    ] as const) {
      await expectInvalid("write", { ...ref, value: bytes("x") }, field(name), "121", "120");
      await expectInvalid("read", ref, field(name), "121", "120");
      await expectInvalid("remove", ref, field(name), "121", "120");
      if (name !== "key") {
        const ns = { primaryNamespace: ref.primaryNamespace, secondaryNamespace: ref.secondaryNamespace };
        await expectInvalid("list", ns, field(name), "121", "120");
        await expectInvalid("listPage", ns, field(name), "121", "120");
      }
    }
  });

  it("accepts 120 characters in every name", async () => {
    const [p, s, k] = ["p", "s", "k"].map((c) => c.repeat(120)) as [string, string, string];
    await goodWrite(p, s, k, bytes("long names"));
    expect(Buffer.from((await call("read", { primaryNamespace: p, secondaryNamespace: s, key: k })).value).toString()).toBe(
      "long names",
    );
    expect((await call("list", { primaryNamespace: p, secondaryNamespace: s })).keys).toEqual([k]);
    expect((await call("listPage", { primaryNamespace: p, secondaryNamespace: s })).keys).toEqual([k]);
  });
});

describe("empty names", () => {
  it("rejects an empty key (a missing key field) in write, read and remove", async () => {
    for (const ns of [{ primaryNamespace: "ns", secondaryNamespace: "sub" }, {}]) {
      await expectInvalid("write", { ...ns, value: bytes("x") }, field("key"), "empty");
      await expectInvalid("read", ns, field("key"), "empty");
      await expectInvalid("remove", ns, field("key"), "empty");
    }
  });

  it("rejects an empty primary namespace with a non-empty secondary in every RPC", async () => {
    const ref = { primaryNamespace: "", secondaryNamespace: "sub", key: "seed" };
    const mentions = [field("secondary_namespace"), field("primary_namespace"), "empty"];
    await expectInvalid("write", { ...ref, value: bytes("x") }, ...mentions);
    await expectInvalid("read", ref, ...mentions);
    await expectInvalid("remove", ref, ...mentions);
    await expectInvalid("list", { secondaryNamespace: "sub" }, ...mentions);
    await expectInvalid("listPage", { secondaryNamespace: "sub" }, ...mentions);
  });

  it("accepts an empty value (a missing value field) and the root namespace", async () => {
    await goodWrite("ns", "", "empty", new Uint8Array());
    expect((await call("read", { primaryNamespace: "ns", key: "empty" })).value).toHaveLength(0);
    expect((await call("list", {})).keys).toEqual(["manager"]);
  });
});

describe("value size", () => {
  it(`rejects ${MAX_VALUE_BYTES + 1} bytes with the limit in the message`, async () => {
    const value = new Uint8Array(MAX_VALUE_BYTES + 1).fill(7);
    await expectInvalid("write", { primaryNamespace: "ns", secondaryNamespace: "sub", key: "seed", value }, String(MAX_VALUE_BYTES), String(MAX_VALUE_BYTES + 1));
    await expectInvalid("write", { primaryNamespace: "ns", secondaryNamespace: "sub", key: "big", value }, String(MAX_VALUE_BYTES));
  });

  it("rejects a value larger than the transport's message limit as well", async () => {
    // grpc-js refuses this before the handler runs; contract §1 allows RESOURCE_EXHAUSTED here.
    const value = new Uint8Array(MAX_VALUE_BYTES + 128 * 1024);
    const error = await call("write", { primaryNamespace: "ns", secondaryNamespace: "sub", key: "seed", value }).then(
      () => undefined,
      (e: unknown) => e as grpc.ServiceError,
    );
    expect([grpc.status.RESOURCE_EXHAUSTED, grpc.status.INVALID_ARGUMENT]).toContain(error?.code);
    expect(error!.details).toMatch(/larger than|largest/);
    expect(error!.details).not.toContain("    at ");
  });

  it(`accepts exactly ${MAX_VALUE_BYTES} bytes`, async () => {
    const value = new Uint8Array(MAX_VALUE_BYTES).map((_, i) => i % 256);
    await goodWrite("ns", "sub", "big", value);
    expect(Buffer.from((await call("read", { primaryNamespace: "ns", secondaryNamespace: "sub", key: "big" })).value)).toEqual(
      Buffer.from(value),
    );
  });
});

describe("versions", () => {
  const ref = { primaryNamespace: "ns", secondaryNamespace: "sub", key: "seed" };

  it("rejects a version above 2^63-1 in write and remove", async () => {
    for (const version of [MAX_VERSION + 1n, (1n << 64n) - 1n]) {
      await expectInvalid("write", { ...ref, value: bytes("x"), version }, field("version"), String(version), String(MAX_VERSION));
      await expectInvalid("remove", { ...ref, version }, field("version"), String(version));
    }
  });

  it("accepts version 2^63-1", async () => {
    await call("write", { primaryNamespace: "ns", secondaryNamespace: "sub", key: "max-version", value: bytes("v"), version: MAX_VERSION });
    written.set("ns/sub/max-version", Buffer.from("v").toString("hex"));
  });
});

describe("paging", () => {
  const ns = { primaryNamespace: "ns", secondaryNamespace: "sub" };

  it("rejects a negative page_size", async () => {
    await expectInvalid("listPage", { ...ns, pageSize: -1 }, field("page_size"), "-1");
    await expectInvalid("listPage", { ...ns, pageSize: -2147483648 }, field("page_size"));
  });

  it("rejects a malformed page_token", async () => {
    const base64url = (text: string) => Buffer.from(text).toString("base64url");
    for (const pageToken of [
      "not a token",
      "%%%",
      base64url("null"),
      base64url("[1,2]"),
      base64url('{"f":1}'),
      base64url('{"f":99,"n":"x","p":"1"}'),
    ]) {
      await expectInvalid("listPage", { ...ns, pageToken }, field("page_token"), "malformed");
    }
  });

  it("rejects a page_token from another namespace pair", async () => {
    const first = await call("listPage", { ...ns, pageSize: 1 });
    expect(first.keys).toHaveLength(1);
    expect(first.nextPageToken).not.toBe("");
    for (const other of [
      { primaryNamespace: "ns", secondaryNamespace: "other" },
      { primaryNamespace: "ns" },
      { primaryNamespace: "sub", secondaryNamespace: "ns" },
      {},
    ]) {
      await expectInvalid("listPage", { ...other, pageToken: first.nextPageToken }, field("page_token"), "another namespace");
    }
    // The token still works where it belongs.
    const rest = await call("listPage", { ...ns, pageToken: first.nextPageToken });
    expect([...first.keys, ...rest.keys].sort()).toEqual(
      [...written.keys()].filter((path) => path.startsWith("ns/sub/")).map((path) => path.split("/")[2]).sort(),
    );
  });
});

describe("after every bad request", () => {
  it("the store holds exactly what the good requests wrote", async () => {
    const long = (c: string) => c.repeat(120);
    expect([...storeContents().keys()].sort()).toEqual(
      [
        "ns/sub/seed",
        "ns/sub/second",
        "//manager",
        `${long("p")}/${long("s")}/${long("k")}`,
        "ns//empty",
        "ns/sub/big",
        "ns/sub/max-version",
      ].sort(),
    );
    expect(Buffer.from((await call("read", { primaryNamespace: "ns", secondaryNamespace: "sub", key: "seed" })).value).toString()).toBe("seed");
    expect(Buffer.from((await call("read", { key: "manager" })).value).toString()).toBe("root");
  });
});
