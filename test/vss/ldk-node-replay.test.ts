// LDK Node main's `VssStore` call sequence against a real `tierkv serve --vss-listen` process,
// through a client that checks each response as vss-client-ng 0.6.0 does in `post_request`
// (src/client.rs): the `vss-protocol-version` header first (anything but "0" is
// VSSVersionMismatchError, whatever the status), then the status, then the body. The calls are
// those of LDK Node's src/io/vss_store.rs: `determine_and_write_schema_version` at start-up (get the
// obfuscated `vss_schema_version`, list the unobfuscated `bdk_wallet#` prefix, put the schema
// version with version -1), writes as one put of version -1, removes as a delete of version -1,
// `list_all_keys` paging from no token until the server answers "", and reads.

import { createHmac, randomBytes } from "node:crypto";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DeleteObjectRequestSchema,
  DeleteObjectResponseSchema,
  ErrorCode,
  ErrorResponseSchema,
  GetObjectRequestSchema,
  GetObjectResponseSchema,
  ListKeyVersionsRequestSchema,
  ListKeyVersionsResponseSchema,
  PutObjectRequestSchema,
  PutObjectResponseSchema,
} from "../../gen/vss/v1/vss_pb.js";
import { spawnServer, type ServerProcess } from "../support/process.js";
import { signatureHeader } from "./vss-harness.js";

/** vss-client-ng 0.6.0's `PROTOCOL_VERSION`. Spelled out here, not imported: the test pins the wire value. */
const CLIENT_PROTOCOL_VERSION = "0";

class VersionMismatch extends Error {}

class VssFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
  ) {
    super(`HTTP ${status} ${ErrorCode[code]}`);
  }
}

/** A client that judges every response as vss-client 0.6 does, and counts them. */
class Vss06Client {
  responses = 0;

  constructor(
    private readonly baseUrl: string,
    private readonly headers: () => Record<string, string>,
  ) {}

  async post<I extends DescMessage, O extends DescMessage>(path: string, input: I, output: O, message: MessageInitShape<I>): Promise<MessageShape<O>> {
    const response = await fetch(`${this.baseUrl}/${path}`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream", ...this.headers() },
      body: toBinary(input, create(input, message)),
    });
    this.responses++;
    const body = new Uint8Array(await response.arrayBuffer());
    // Header first: a mismatch is an error even on a 2xx or a 4xx.
    if (response.headers.get("vss-protocol-version") !== CLIENT_PROTOCOL_VERSION) {
      throw new VersionMismatch(`vss-protocol-version ${response.headers.get("vss-protocol-version")} on ${path} (${response.status})`);
    }
    if (response.status >= 200 && response.status < 300) return fromBinary(output, body);
    throw new VssFailure(response.status, fromBinary(ErrorResponseSchema, body).errorCode);
  }
}

/** LDK Node's key obfuscation, in shape: a base64 (with + / =) stand-in for its ChaCha20 output. */
function obfuscate(secret: Buffer, text: string): string {
  return createHmac("sha256", secret).update(text).digest("base64");
}

/** The calls LDK Node's VssStore makes for one node (one store id). */
class LdkNodeVssStore {
  private readonly secret = randomBytes(32);

  constructor(
    private readonly client: Vss06Client,
    private readonly storeId: string,
  ) {}

  private storeKey(primary: string, secondary: string, key: string): string {
    return `${obfuscate(this.secret, `${primary}#${secondary}`)}#${obfuscate(this.secret, key)}`;
  }

  /** `determine_and_write_schema_version`: returns whether the schema version was already there. */
  async start(): Promise<"found" | "written"> {
    const key = this.storeKey("", "", "vss_schema_version");
    try {
      await this.client.post("getObject", GetObjectRequestSchema, GetObjectResponseSchema, { storeId: this.storeId, key });
      return "found";
    } catch (error) {
      if (!(error instanceof VssFailure && error.code === ErrorCode.NO_SUCH_KEY_EXCEPTION)) throw error;
    }
    const listed = await this.client.post("listKeyVersions", ListKeyVersionsRequestSchema, ListKeyVersionsResponseSchema, {
      storeId: this.storeId,
      keyPrefix: "bdk_wallet#",
    });
    expect(listed.keyVersions).toEqual([]);
    await this.put(key, Uint8Array.of(1));
    return "written";
  }

  private async put(key: string, value: Uint8Array): Promise<void> {
    await this.client.post("putObjects", PutObjectRequestSchema, PutObjectResponseSchema, {
      storeId: this.storeId,
      transactionItems: [{ key, version: -1n, value }],
    });
  }

  write(primary: string, secondary: string, key: string, value: Uint8Array): Promise<void> {
    return this.put(this.storeKey(primary, secondary, key), value);
  }

  async read(primary: string, secondary: string, key: string): Promise<Uint8Array | undefined> {
    try {
      const reply = await this.client.post("getObject", GetObjectRequestSchema, GetObjectResponseSchema, {
        storeId: this.storeId,
        key: this.storeKey(primary, secondary, key),
      });
      // vss-client treats a reply without a value as an API violation.
      expect(reply.value).toBeDefined();
      return reply.value!.value;
    } catch (error) {
      if (error instanceof VssFailure && error.code === ErrorCode.NO_SUCH_KEY_EXCEPTION) return undefined;
      throw error;
    }
  }

  async remove(primary: string, secondary: string, key: string): Promise<void> {
    await this.client.post("deleteObject", DeleteObjectRequestSchema, DeleteObjectResponseSchema, {
      storeId: this.storeId,
      keyValue: { key: this.storeKey(primary, secondary, key), version: -1n },
    });
  }

  /** `list_all_keys`: `while page_token != Some("")`, starting from no token, default page size. */
  async list(primary: string, secondary: string, pageSize?: number): Promise<string[]> {
    const prefix = obfuscate(this.secret, `${primary}#${secondary}`);
    const keys: string[] = [];
    let pageToken: string | undefined;
    let pages = 0;
    do {
      const page = await this.client.post("listKeyVersions", ListKeyVersionsRequestSchema, ListKeyVersionsResponseSchema, {
        storeId: this.storeId,
        keyPrefix: prefix,
        ...(pageToken !== undefined && { pageToken }),
        ...(pageSize !== undefined && { pageSize }),
      });
      // An absent token would make LDK Node list the first page again, forever.
      expect(page.nextPageToken).toBeDefined();
      keys.push(...page.keyVersions.map((kv) => kv.key.slice(prefix.length + 1)));
      pageToken = page.nextPageToken;
      expect(++pages).toBeLessThan(1000);
    } while (pageToken !== "");
    return keys;
  }

  keyName(key: string): string {
    return obfuscate(this.secret, key);
  }
}

describe.each([
  ["without authentication", [] as string[], () => () => ({})],
  ["with signature authentication (--auth sigs)", ["--auth", "sigs"], () => {
    const secret = secp256k1.utils.randomSecretKey();
    return () => ({ authorization: signatureHeader(secret) });
  }],
] as const)("LDK Node main's VssStore sequence against tierkv serve --vss-listen, %s", (_name, authArgs, makeHeaders) => {
  let server: ServerProcess;
  let url: string;

  beforeAll(async () => {
    server = await spawnServer(["--primary", "memory:", "--vss-listen", "127.0.0.1:0", ...authArgs]);
    url = `http://${server.listening["vss"] as string}/vss`;
  });
  afterAll(async () => {
    await server?.kill("SIGTERM");
  });

  it("starts, writes, reads, removes and lists with the header checked on every response", async () => {
    const client = new Vss06Client(url, makeHeaders());
    const node = new LdkNodeVssStore(client, "node-1");
    expect(await node.start()).toBe("written");
    // A restart finds the schema version.
    expect(await node.start()).toBe("found");

    const monitors = Array.from({ length: 150 }, (_, i) => `chan_${i}`);
    for (const [i, key] of monitors.entries()) await node.write("monitors", "", key, Uint8Array.of(i % 256, 1));
    await node.write("", "", "manager", Uint8Array.of(9));
    for (const [i, key] of monitors.entries()) {
      // An update, as a channel-monitor persist rewrites the same key.
      if (i % 3 === 0) await node.write("monitors", "", key, Uint8Array.of(i % 256, 2));
    }
    for (const key of monitors.slice(0, 20)) await node.remove("monitors", "", key);
    await node.remove("monitors", "", "never_written");

    const expected = monitors.slice(20).map((key) => node.keyName(key)).sort();
    expect((await node.list("monitors", "")).sort()).toEqual(expected);
    expect((await node.list("monitors", "", 7)).sort()).toEqual(expected);
    expect(await node.list("unused", "")).toEqual([]);
    expect(await node.read("monitors", "", "chan_22")).toEqual(Uint8Array.of(22, 1));
    expect(await node.read("monitors", "", "chan_30")).toEqual(Uint8Array.of(30, 2));
    expect(await node.read("monitors", "", "chan_0")).toBeUndefined();
    expect(await node.read("", "", "manager")).toEqual(Uint8Array.of(9));
    expect(client.responses).toBeGreaterThan(200);
  });

  it("error answers carry the header too, so the client sees the status behind them", async () => {
    const client = new Vss06Client(url, makeHeaders());
    await expect(
      client.post("getObject", GetObjectRequestSchema, GetObjectResponseSchema, { storeId: "node-1", key: "absent" }),
    ).rejects.toMatchObject({ status: 404, code: ErrorCode.NO_SUCH_KEY_EXCEPTION });
    await expect(
      client.post("putObjects", PutObjectRequestSchema, PutObjectResponseSchema, { storeId: "node-1", transactionItems: [{ key: "c", version: 5n }] }),
    ).rejects.toMatchObject({ status: 409, code: ErrorCode.CONFLICT_EXCEPTION });
    await expect(client.post("noSuchPath", GetObjectRequestSchema, GetObjectResponseSchema, { storeId: "node-1", key: "k" })).rejects.toMatchObject({
      status: 400,
    });
    if (authArgs.length > 0) {
      const anonymous = new Vss06Client(url, () => ({}));
      await expect(anonymous.post("getObject", GetObjectRequestSchema, GetObjectResponseSchema, { storeId: "node-1", key: "k" })).rejects.toMatchObject({
        status: 401,
        code: ErrorCode.AUTH_EXCEPTION,
      });
    }
  });
});
