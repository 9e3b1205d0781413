// The HTTP edge of the VSS listener: routes, methods, bodies, limits and error replies, each
// carrying the protocol-version header (rawPost asserts it on every response).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { ErrorCode, GetObjectRequestSchema, PutObjectRequestSchema } from "../../gen/vss/v1/vss_pb.js";
import { StoreError } from "../../src/store/errors.js";
import { FsStore } from "../../src/store/fs.js";
import { MemoryStore } from "../../src/store/memory.js";
import type { CallOptions, KeyRef, VersionedValue } from "../../src/store/types.js";
import { INTERNAL_MESSAGE } from "../../src/vss/protocol.js";
import { ForwardingStore } from "../support/fault-stores.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { errorOf, rawPost, refused, startVssHarness, VssTestClient, type VssHarness } from "./vss-harness.js";

const getBody = (key: string, storeId = "s"): Uint8Array => toBinary(GetObjectRequestSchema, create(GetObjectRequestSchema, { storeId, key }));

/** A primary whose reads fail with an error that must not reach the caller. */
class BrokenReads extends ForwardingStore {
  override async readVersioned(_ref: KeyRef, _options?: CallOptions): Promise<VersionedValue> {
    throw new Error("disk on fire at /secret/path");
  }
}

describe("VSS HTTP edge", () => {
  let vss: VssHarness;
  beforeAll(async () => {
    vss = await startVssHarness({ limits: { maxValueBytes: 64 * 1024, maxBatchBytes: 100 * 1024 }, maxBodyBytes: 256 * 1024 });
  });
  afterAll(() => vss.close());

  it("answers 200 with an octet-stream protobuf body", async () => {
    const c = new VssTestClient(vss.url, "s");
    await c.put([["k", "v", 0]]);
    const response = await rawPost(`${vss.url}/getObject`, getBody("k"));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/octet-stream");
  });

  it("an unknown path, or one outside /vss, answers 400 with an ErrorResponse", async () => {
    for (const path of ["/vss/getObjects", "/vss", "/getObject", "/vss/getObject/extra", "/metrics"]) {
      const response = await rawPost(`http://127.0.0.1:${vss.server.port}${path}`, getBody("k"));
      const error = await errorOf(response);
      expect([error.status, error.code]).toEqual([400, ErrorCode.INVALID_REQUEST_EXCEPTION]);
    }
  });

  it("a query string does not change the route", async () => {
    const response = await rawPost(`${vss.url}/getObject?x=1`, getBody("absent"));
    expect(response.status).toBe(404);
  });

  it("methods other than POST answer 405 with Allow: POST", async () => {
    for (const method of ["GET", "PUT", "DELETE"]) {
      const response = await rawPost(`${vss.url}/getObject`, getBody("k"), {}, method);
      expect(response.status).toBe(405);
      expect(response.headers.get("allow")).toBe("POST");
      expect((await errorOf(response)).code).toBe(ErrorCode.INVALID_REQUEST_EXCEPTION);
    }
  });

  it("an undecodable body answers 400", async () => {
    const response = await rawPost(`${vss.url}/putObjects`, new Uint8Array([0xff, 0xff, 0xff, 0xff]));
    const error = await errorOf(response);
    expect([error.status, error.code, error.serverMessage]).toEqual([400, ErrorCode.INVALID_REQUEST_EXCEPTION, "Error parsing request"]);
  });

  it("--max-batch-items bounds a put's items, as it bounds Mutate and Txn", async () => {
    const small = await startVssHarness({ limits: { maxBatchItems: 3 } });
    try {
      const c = new VssTestClient(small.url, "s");
      const items = (n: number) => Array.from({ length: n }, (_, i) => [`k${i}`, "v", -1] as const);
      const error = await refused(c.put(items(4)), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
      expect(error.serverMessage).toContain("--max-batch-items");
      await c.put(items(3));
    } finally {
      await small.close();
    }
  });

  it("a body over the limit answers 413, and the listener keeps serving", async () => {
    const big = toBinary(
      PutObjectRequestSchema,
      create(PutObjectRequestSchema, { storeId: "s", transactionItems: [{ key: "k", version: -1n, value: new Uint8Array(300 * 1024) }] }),
    );
    const response = await rawPost(`${vss.url}/putObjects`, big);
    const error = await errorOf(response);
    expect([error.status, error.code]).toEqual([413, ErrorCode.INVALID_REQUEST_EXCEPTION]);
    expect((await rawPost(`${vss.url}/getObject`, getBody("k"))).status).toBe(200);
  });

  it("a streamed (chunked) body over the limit answers 413 too", async () => {
    const chunk = new Uint8Array(64 * 1024);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 8) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const response = await fetch(`${vss.url}/putObjects`, { method: "POST", body, duplex: "half" } as RequestInit);
    expect(response.headers.get("vss-protocol-version")).toBe("0");
    const error = await errorOf(response);
    expect([error.status, error.code]).toEqual([413, ErrorCode.INVALID_REQUEST_EXCEPTION]);
  });

  it("a value over --max-value-bytes, or values over --max-batch-bytes, answer 400", async () => {
    const c = new VssTestClient(vss.url, "limits");
    await refused(c.put([["k", new Uint8Array(64 * 1024 + 1), -1]]), 400, ErrorCode.INVALID_REQUEST_EXCEPTION);
    await refused(
      c.put([
        ["a", new Uint8Array(60 * 1024), -1],
        ["b", new Uint8Array(60 * 1024), -1],
      ]),
      400,
      ErrorCode.INVALID_REQUEST_EXCEPTION,
    );
    await c.put([["a", new Uint8Array(64 * 1024), -1]]);
  });

  it("404 and 409 replies carry the header and their codes", async () => {
    const c = new VssTestClient(vss.url, "codes");
    await refused(c.get("nope"), 404, ErrorCode.NO_SUCH_KEY_EXCEPTION);
    await c.put([["k", "v", 0]]);
    await refused(c.put([["k", "v", 0]]), 409, ErrorCode.CONFLICT_EXCEPTION);
  });

  it("an empty body is a valid empty request", async () => {
    // store_id "" and key "": the key is refused (VSS keys are never empty here).
    const response = await rawPost(`${vss.url}/getObject`, new Uint8Array());
    expect(response.status).toBe(400);
    const put = await rawPost(`${vss.url}/putObjects`, new Uint8Array());
    expect(put.status).toBe(200);
  });
});

describe("VSS HTTP failures", () => {
  afterAll(() => removeTempDirs());

  it("a store failure answers 500 with a generic message", async () => {
    const vss = await startVssHarness({ primary: new BrokenReads(new MemoryStore()) });
    try {
      const error = await refused(new VssTestClient(vss.url, "s").get("k"), 500, ErrorCode.INTERNAL_SERVER_EXCEPTION);
      expect(error.serverMessage).toBe(INTERNAL_MESSAGE);
    } finally {
      await vss.close();
    }
  });

  it("authentication runs before the body is read: 401 even for an undecodable body", async () => {
    const vss = await startVssHarness({
      authenticate: async () => {
        throw new StoreError("unauthenticated", "missing credentials");
      },
    });
    try {
      const error = await errorOf(await rawPost(`${vss.url}/putObjects`, new Uint8Array([0xff, 0xff])));
      expect([error.status, error.code]).toEqual([401, ErrorCode.AUTH_EXCEPTION]);
    } finally {
      await vss.close();
    }
  });

  it("an fs primary refuses VSS stores: a server setting, so 500 with the fixed message (the cause is logged)", async () => {
    const fs = await FsStore.open(tempDir());
    const vss = await startVssHarness({ primary: fs });
    try {
      const error = await refused(new VssTestClient(vss.url, "s").put([["../../escape", "v", -1]]), 500, ErrorCode.INTERNAL_SERVER_EXCEPTION);
      expect(error.serverMessage).toBe("Unknown Server Error occurred.");
      await refused(new VssTestClient(vss.url, "s").get("k"), 500, ErrorCode.INTERNAL_SERVER_EXCEPTION);
    } finally {
      await vss.close();
    }
  });

  it("close() ends the listener", async () => {
    const vss = await startVssHarness();
    await vss.close();
    await expect(fetch(`${vss.url}/getObject`, { method: "POST", body: getBody("k") })).rejects.toThrow();
  });
});
