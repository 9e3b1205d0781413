// Issue 18's call pipeline on a real `tierkv serve` process: every surface (gRPC, Connect JSON and
// binary, gRPC-Web, VSS) shows up in /metrics with its `surface` label and in the one debug
// `request` line; an unauthenticated 64 MB body is refused on each without the server buffering
// it, while another tenant's reads keep completing; Connect takes gzip within the limits measured
// after decompression; mTLS identities reach Connect and VSS over HTTPS; `buf curl` reaches
// health through reflection alone.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KVStoreService, ReadRequestSchema, WriteRequestSchema } from "../../gen/tierkv/v1/kvstore_pb.js";
import { GetObjectRequestSchema, GetObjectResponseSchema, PutObjectRequestSchema } from "../../gen/vss/v1/vss_pb.js";
import { TierkvAdminClient as AdminClient } from "../../src/client/admin-client.js";
import { TierkvClient } from "../../src/client/client.js";
import { addTokenWithCli, issueClientCertificate, waitForLog } from "../support/auth.js";
import { makeCertificates } from "../support/certs.js";
import { spawnServer, type ServerProcess } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const MB = 1024 * 1024;
const ref = { primaryNamespace: "p", secondaryNamespace: "", key: "k" };

interface RawResponse {
  readonly status?: number;
  readonly headers?: IncomingHttpHeaders;
  readonly body?: Buffer;
  /** The connection failed before an answer (the server closed it on a refused body). */
  readonly error?: string;
}

/** POSTs `body` over HTTP/1.1 (or HTTPS with `tls`) and resolves with the answer or the connection's failure. */
function post(url: string, headers: Record<string, string>, body: Uint8Array, tls?: { ca: Buffer; cert?: Buffer; key?: Buffer }): Promise<RawResponse> {
  return new Promise((resolve) => {
    const send = tls === undefined ? httpRequest : httpsRequest;
    const request = send(url, { method: "POST", headers: { "content-length": String(body.byteLength), ...headers }, ...(tls ?? {}) }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks) }));
      response.on("error", (error) => resolve({ status: response.statusCode!, error: error.message }));
    });
    request.on("error", (error) => resolve({ error: error.message }));
    request.end(body);
  });
}

/** The server's resident set, in bytes. */
function rssOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))!;
  return Number(/(\d+)/.exec(line)![1]) * 1024;
}

/** A gRPC-Web envelope around `message`. */
function envelope(message: Uint8Array, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([head, message]);
}

/** `size` bytes of one unknown length-delimited field (number 1000) of a protobuf message. */
function unknownFields(size: number): Buffer {
  const bytes = Buffer.alloc(size, 0x61);
  // Field 1000, wire type 2, then a 4-byte varint length covering the rest.
  const tag = [0xc2, 0x3e];
  const length = size - 6;
  const varint = [(length & 0x7f) | 0x80, ((length >> 7) & 0x7f) | 0x80, ((length >> 14) & 0x7f) | 0x80, (length >> 21) & 0x7f];
  Buffer.from([...tag, ...varint]).copy(bytes);
  return bytes;
}

describe("a server with tokens on every surface", () => {
  let dir: string;
  let server: ServerProcess;
  let http: string;
  let metrics: string;
  let alice: string;
  let bob: string;
  let ops: string;

  beforeAll(async () => {
    dir = tempDir();
    const tokens = join(dir, "identities.json");
    alice = await addTokenWithCli(tokens, "alice", ["write"]);
    bob = await addTokenWithCli(tokens, "bob", ["write"]);
    ops = await addTokenWithCli(tokens, "ops", ["admin"]);
    server = await spawnServer([
      "--primary", `sqlite:${join(dir, "db.sqlite")}`,
      "--auth", "tokens", "--tokens-file", tokens,
      "--vss-listen", "127.0.0.1:0",
      "--metrics-listen", "127.0.0.1:0",
      "--log-level", "debug",
    ]);
    http = `http://${server.listening["vss"] as string}`;
    metrics = `http://${server.listening["metrics"] as string}/metrics`;
  });

  afterAll(async () => {
    await server?.kill();
    removeTempDirs();
  });

  it("counts and logs each surface's calls alike, with the surface and the store touched", async () => {
    const grpcClient = new TierkvClient({ address: server.address, bearerToken: alice });
    await grpcClient.write(ref, Buffer.from("v"));
    grpcClient.close();
    const auth = { authorization: `Bearer ${alice}` };
    const json = await post(`${http}/tierkv.v1.KVStoreService/Read`, { ...auth, "content-type": "application/json" }, Buffer.from(JSON.stringify({ primaryNamespace: "p", key: "k" })));
    expect(json.status).toBe(200);
    const binary = await post(`${http}/tierkv.v1.KVStoreService/Read`, { ...auth, "content-type": "application/proto" }, toBinary(ReadRequestSchema, create(ReadRequestSchema, ref)));
    expect(binary.status).toBe(200);
    const web = createClient(KVStoreService, createGrpcWebTransport({ baseUrl: http, httpVersion: "1.1", interceptors: [(next) => (request) => (request.header.set("authorization", `Bearer ${alice}`), next(request))] }));
    expect(Buffer.from((await web.read(ref)).value).toString()).toBe("v");
    const vss = await post(`${http}/vss/getObject`, auth, toBinary(GetObjectRequestSchema, create(GetObjectRequestSchema, { storeId: "wallet", key: "absent" })));
    expect(vss.status).toBe(404);

    const text = await (await fetch(metrics)).text();
    const kv = 'grpc_type="unary",grpc_service="tierkv.v1.KVStoreService"';
    expect(text).toContain(`grpc_server_handled_total{${kv},grpc_method="Write",surface="grpc",grpc_code="OK"} 1`);
    expect(text).toContain(`grpc_server_handled_total{${kv},grpc_method="Read",surface="connect",grpc_code="OK"} 2`);
    expect(text).toContain(`grpc_server_handled_total{${kv},grpc_method="Read",surface="grpc-web",grpc_code="OK"} 1`);
    expect(text).toContain('grpc_server_handled_total{grpc_type="unary",grpc_service="vss",grpc_method="getObject",surface="vss",grpc_code="NotFound"} 1');
    expect(text).toContain('grpc_server_started_total{grpc_type="unary",grpc_service="vss",grpc_method="getObject",surface="vss"} 1');
    expect(text).toMatch(/grpc_server_handling_seconds_count\{grpc_type="unary",grpc_service="tierkv.v1.KVStoreService",grpc_method="Read",surface="grpc-web"\} 1/);

    for (const surface of ["grpc", "connect", "grpc-web"]) {
      const line = await waitForLog(server, (entry) => entry["msg"] === "request" && entry["surface"] === surface);
      expect(line).toMatchObject({ store: "alice", path: "p/k", outcome: "ok" });
    }
    const vssLine = await waitForLog(server, (entry) => entry["msg"] === "request" && entry["surface"] === "vss");
    expect(vssLine).toMatchObject({ method: "getObject", store: "vss:alice:wallet", path: "absent", outcome: "failed", code: "not-found" });
  });

  it("reports a Connect call that connect-es itself refuses (a content type it does not speak) like any failed call", async () => {
    const headers = { authorization: `Bearer ${bob}`, "content-type": "application/xml" };
    const refused = await post(`${http}/tierkv.v1.KVStoreService/Remove`, headers, toBinary(ReadRequestSchema, create(ReadRequestSchema, ref)));
    expect(refused.status).toBe(415);
    // The call is reported once connect-es has written its answer, just after the caller has it.
    await expect
      .poll(async () => (await fetch(metrics)).text())
      .toContain('grpc_server_handled_total{grpc_type="unary",grpc_service="tierkv.v1.KVStoreService",grpc_method="Remove",surface="connect",grpc_code="InvalidArgument"} 1');
    const line = await waitForLog(server, (entry) => entry["msg"] === "request" && entry["method"] === "Remove" && entry["surface"] === "connect");
    expect(line).toMatchObject({ store: "bob", outcome: "failed", code: "invalid-argument" });
  });

  it("logs the store an admin call touched, and refuses AdminService to a caller without the role", async () => {
    const admin = new AdminClient({ address: server.address, bearerToken: ops });
    await admin.storeUsage("alice");
    admin.close();
    const line = await waitForLog(server, (entry) => entry["msg"] === "request" && entry["method"] === "StoreUsage");
    expect(line).toMatchObject({ surface: "grpc", store: "alice", outcome: "ok" });
    const notAdmin = new AdminClient({ address: server.address, bearerToken: bob });
    await expect(notAdmin.storeUsage("alice")).rejects.toMatchObject({ code: "permission-denied" });
    notAdmin.close();
  });

  it("refuses an unauthenticated 64 MB body on every surface without buffering it, while another tenant's reads complete", async () => {
    // Built before the clock starts: the test process shares its event loop with the reader.
    const body = unknownFields(64 * MB);
    const json = Buffer.from(`{${'"x":0,'.repeat((64 * MB) / 6 - 1)}"y":0}`);
    const web = envelope(body);
    const reader = new TierkvClient({ address: server.address, bearerToken: bob, timeoutMs: 10_000 });
    await reader.write(ref, Buffer.from("bob's"));
    const pid = server.child.pid!;
    const before = rssOf(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 20);
    let slowest = 0;
    let reads = 0;
    let flooding = true;
    const readLoop = (async () => {
      while (flooding) {
        const started = Date.now();
        await reader.read(ref);
        slowest = Math.max(slowest, Date.now() - started);
        reads++;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();

    const raw = new grpc.Client(server.address, grpc.credentials.createInsecure());
    const grpcRefusal = new Promise<grpc.ServiceError | null>((resolve) =>
      raw.makeUnaryRequest("/tierkv.v1.KVStoreService/Read", (b: Buffer) => b, (b: Buffer) => b, body, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (error) => resolve(error)),
    );
    const [grpcError, connectJson, connectBinary, grpcWeb, vss] = await Promise.all([
      grpcRefusal,
      post(`${http}/tierkv.v1.KVStoreService/Write`, { "content-type": "application/json" }, json),
      post(`${http}/tierkv.v1.KVStoreService/Write`, { "content-type": "application/proto" }, body),
      post(`${http}/tierkv.v1.KVStoreService/Write`, { "content-type": "application/grpc-web+proto" }, web),
      post(`${http}/vss/putObjects`, {}, body),
    ]);
    flooding = false;
    await readLoop;
    clearInterval(sampler);
    raw.close();
    reader.close();

    expect(grpcError?.code).toBe(grpc.status.UNAUTHENTICATED);
    // An HTTP answer comes before the body is read; the server then closes the connection, which
    // the client may see as a failed upload instead of the answer.
    for (const answer of [connectJson, connectBinary, vss]) {
      if (answer.status !== undefined) expect(answer.status).toBe(401);
      else expect(answer.error).toBeDefined();
    }
    if (grpcWeb.status !== undefined) expect(grpcWeb.headers?.["grpc-status"] ?? "16").toBe("16");
    const text = await (await fetch(metrics)).text();
    for (const surface of ["grpc", "connect", "grpc-web"]) {
      expect(text).toMatch(new RegExp(`grpc_server_handled_total\\{[^}]*surface="${surface}",grpc_code="Unauthenticated"\\} [1-9]`));
    }
    expect(text).toMatch(/grpc_server_handled_total\{[^}]*grpc_method="putObjects",surface="vss",grpc_code="Unauthenticated"\} 1/);
    expect(peak - before).toBeLessThan(64 * MB);
    expect(reads).toBeGreaterThan(0);
    expect(slowest).toBeLessThan(1000);
    console.log(`RSS growth ${((peak - before) / MB).toFixed(1)} MiB; ${reads} reads, slowest ${slowest} ms`);
  }, 120_000);

  it("takes a gzip-compressed Connect binary request, and refuses one that inflates past the limit", async () => {
    const auth = { authorization: `Bearer ${alice}`, "content-type": "application/proto", "content-encoding": "gzip" };
    const write = create(WriteRequestSchema, { ...ref, key: "zipped", value: Buffer.from("compressed") });
    const ok = await post(`${http}/tierkv.v1.KVStoreService/Write`, auth, gzipSync(toBinary(WriteRequestSchema, write)));
    expect(ok.status).toBe(200);
    const read = await post(`${http}/tierkv.v1.KVStoreService/Read`, { authorization: `Bearer ${alice}`, "content-type": "application/json" }, Buffer.from(JSON.stringify({ primaryNamespace: "p", key: "zipped" })));
    expect(Buffer.from((JSON.parse(read.body!.toString()) as { value: string }).value, "base64").toString()).toBe("compressed");
    // 80 MB of zeros gzip to ~80 KB: past the 69,222,400-byte message limit once inflated.
    const bomb = await post(`${http}/tierkv.v1.KVStoreService/Write`, auth, gzipSync(Buffer.alloc(80 * MB)));
    expect(bomb.status).toBe(429);
    expect(JSON.parse(bomb.body!.toString())).toMatchObject({ code: "resource_exhausted" });
  });

  it("answers buf curl's health check and method list through reflection alone", async () => {
    const buf = join(process.cwd(), "node_modules/.bin/buf");
    const run = promisify(execFile);
    const check = await run(buf, ["curl", "--http2-prior-knowledge", "--protocol", "grpc", `http://${server.address}/grpc.health.v1.Health/Check`]);
    expect(JSON.parse(check.stdout)).toEqual({ status: "SERVING" });
    const list = await run(buf, ["curl", "--http2-prior-knowledge", "--protocol", "grpc", "--list-methods", `http://${server.address}`]);
    expect(list.stdout.split("\n")).toEqual(expect.arrayContaining(["grpc.health.v1.Health/Check", "tierkv.v1.KVStoreService/Read"]));
  }, 60_000);
});

describe("mTLS identities over HTTPS", () => {
  let dir: string;
  let server: ServerProcess;
  let https: string;
  let tls: { ca: Buffer; cert: Buffer; key: Buffer };

  beforeAll(async () => {
    dir = tempDir();
    const certs = makeCertificates(dir);
    const alice = issueClientCertificate(dir, "alice");
    tls = { ca: readFileSync(certs.ca), cert: readFileSync(alice.cert), key: readFileSync(alice.key) };
    server = await spawnServer([
      "--primary", "memory:",
      "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey, "--tls-client-ca", certs.ca,
      "--auth", "mtls",
      "--vss-listen", "127.0.0.1:0",
    ]);
    https = `https://${server.listening["vss"] as string}`;
  });

  afterAll(async () => {
    await server?.kill();
    removeTempDirs();
  });

  it("identifies a Connect caller by its client certificate", async () => {
    const json = { "content-type": "application/json" };
    const write = await post(`${https}/tierkv.v1.KVStoreService/Write`, json, Buffer.from(JSON.stringify({ ...ref, value: Buffer.from("tls").toString("base64") })), tls);
    expect(write.status).toBe(200);
    const read = await post(`${https}/tierkv.v1.KVStoreService/Read`, json, Buffer.from(JSON.stringify(ref)), tls);
    expect(read.status).toBe(200);
    expect(Buffer.from((JSON.parse(read.body!.toString()) as { value: string }).value, "base64").toString()).toBe("tls");
    // The certificate's subject is the store: a gRPC client with the same certificate reads it.
    const grpcClient = new TierkvClient({ address: server.address, credentials: grpc.credentials.createSsl(tls.ca, tls.key, tls.cert) });
    expect(Buffer.from(await grpcClient.read(ref)).toString()).toBe("tls");
    grpcClient.close();
  });

  it("identifies a VSS caller by its client certificate", async () => {
    const put = create(PutObjectRequestSchema, { storeId: "wallet", transactionItems: [{ key: "k", version: 0n, value: Buffer.from("vss over mtls") }] });
    const written = await post(`${https}/vss/putObjects`, {}, toBinary(PutObjectRequestSchema, put), tls);
    expect(written.status).toBe(200);
    const got = await post(`${https}/vss/getObject`, {}, toBinary(GetObjectRequestSchema, create(GetObjectRequestSchema, { storeId: "wallet", key: "k" })), tls);
    expect(got.status).toBe(200);
    expect(Buffer.from(fromBinary(GetObjectResponseSchema, got.body!).value!.value).toString()).toBe("vss over mtls");
  });
});
