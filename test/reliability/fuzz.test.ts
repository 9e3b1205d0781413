// Issue 12, "Malformed input": a seeded fuzzer against a real in-process tierkv (TierStore over
// SQLite, `--auth tokens`, small limits) on every surface: every gRPC method of KVStoreService
// and AdminService (random bytes, mutated valid messages, wrong wire types, huge length prefixes,
// invalid UTF-8, forged page tokens, extreme versions and page sizes, over-size values, bad
// credentials), Connect JSON and binary and gRPC-Web, VSS, and raw HTTP/2 framing.
//
// Every call must get a status within its 5 s deadline, never INTERNAL (the justified exceptions
// are listed in JUSTIFIED_INTERNAL), the server must keep answering a normal Read after each
// batch, and the stored data must be byte-for-byte what it was: fuzz traffic authenticates as a
// read-only identity or not at all, and a write-role identity sends only requests that must be
// refused. FUZZ_SEED=<n> replays another run; the seed, the counts and the status histograms are
// printed.

import { createHash } from "node:crypto";
import { connect as http2Connect, type ClientHttp2Session, type IncomingHttpHeaders, type IncomingHttpStatusHeader } from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, fromJson, toJsonString, type DescMessage, type DescMethod, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/tierkv/v1/admin_pb.js";
import { KVStoreService, MutateResponseSchema, ReadRequestSchema, ReadResponseSchema } from "../../gen/tierkv/v1/kvstore_pb.js";
import { TierkvClient } from "../../src/client/client.js";
import { messageLimitBytes } from "../../src/limits.js";
import { removeTempDirs } from "../support/temp.js";
import { FUZZ_LIMITS, startFuzzServer, type FuzzServer, type VssEndpoint } from "./support/fuzz-server.js";
import {
  classifyConnect,
  connectRequest,
  type ConnectVerdict,
  grpcWebFrame,
  mutateResultCodes,
  send,
  VSS_OPERATIONS,
  vssInvalidRequest,
  vssRequest,
  type HttpOutcome,
  type HttpRequest,
} from "./support/http-inputs.js";
import { encode, fuzzInput, invalidFor, validSample, type FuzzInput, type Init, type TokenCorpus, type ValueSpace } from "./support/inputs.js";
import { fuzzSeed, Prng } from "./support/prng.js";
import { CALL_DEADLINE_MS, RawGrpc, statusName, type RawOutcome } from "./support/raw-grpc.js";

const SEED = fuzzSeed();
/** Inputs per gRPC method from the read-only and unauthenticated callers. */
const PER_GRPC_METHOD = 300;
/** Inputs per HTTP endpoint (Connect method, VSS operation) from those callers. */
const PER_HTTP_ENDPOINT = 100;
/** Invalid-only inputs per gRPC method and per HTTP endpoint from the write-role caller. */
const WRITER_PER_GRPC_METHOD = 100;
const WRITER_PER_HTTP_ENDPOINT = 40;
/** Calls in flight at once. */
const CONCURRENCY = 24;

/**
 * INTERNAL answers that are not tierkv's doing, by raw-HTTP/2 case name: grpc-js's transport (or
 * Node's HTTP/2 layer) decides them before any tierkv code runs.
 */
const JUSTIFIED_INTERNAL: Record<string, string> = {
  "gzip encoding with a body that is not gzip": "grpc-js fails to decompress the message and answers INTERNAL before any handler runs",
  "bearer of 100 KB":
    "the header block exceeds the HTTP/2 limit, so the server's HTTP/2 layer refuses the stream (REFUSED_STREAM; grpc-js clients report it as INTERNAL) before any tierkv code runs",
  "grpc-timeout unparsable":
    "grpc-js parses grpc-timeout before dispatching and answers a malformed one INTERNAL \"Invalid grpc-timeout value\"; no tierkv code runs",
};

/**
 * Connect and gRPC-Web answers that are INTERNAL for reasons outside tierkv's handlers: a
 * compressed gRPC-Web envelope without an encoding is a protocol error connect-es answers INTERNAL
 * before any handler of connect-service.ts runs. (A binary body that does not decode used to be
 * another: connect-service.ts now checks it first and answers INVALID_ARGUMENT, as the gRPC port.)
 */
const CONNECT_INTERNAL_OUTSIDE_HANDLERS = [/^received compressed envelope, but do not know how to decompress$/];

// A PRNG per section, so one section's inputs do not depend on another's.
function prngFor(label: string): Prng {
  let hash = 0x811c9dc5;
  for (const char of label) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193) >>> 0;
  return new Prng((SEED ^ hash) >>> 0);
}

let server: FuzzServer;
let raw: RawGrpc;
let admin: TierkvClient;
let space: ValueSpace;
let vssKeys: string[];
let vssToken: string;
/** pages/sub/k1's value: what the health checks read back. */
let probeValue: Uint8Array;
let before: string[];

// ---------------------------------------------------------------------------------------------
// Bookkeeping: inputs per surface and method, status histograms, violations.

const inputs = new Map<string, number>();
const histograms = new Map<string, Map<string, number>>();
const kinds = new Map<string, number>();
const internals: string[] = [];
const justified: string[] = [];

function tally(surface: string, method: string, label: string, kind: string): void {
  inputs.set(`${surface} ${method}`, (inputs.get(`${surface} ${method}`) ?? 0) + 1);
  const histogram = histograms.get(surface) ?? new Map<string, number>();
  histogram.set(label, (histogram.get(label) ?? 0) + 1);
  histograms.set(surface, histogram);
  kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
}

function sample(bytes: Uint8Array | undefined): string {
  if (bytes === undefined) return "";
  const hex = Buffer.from(bytes.subarray(0, 48)).toString("hex");
  return bytes.length > 48 ? `${hex}… (${bytes.length} bytes)` : hex;
}

async function inBatches<T>(items: readonly T[], run: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += CONCURRENCY) await Promise.all(items.slice(i, i + CONCURRENCY).map(run));
}

// ---------------------------------------------------------------------------------------------
// Credentials.

interface Credential {
  readonly label: "reader" | "unauthenticated" | "writer";
  readonly authorization: string | undefined;
}

const PRINTABLE = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";

/** Mostly the read-only identity; else no credentials, garbage, a 10 KB bearer, unknown tokens. */
function fuzzCredential(prng: Prng): Credential {
  const reader = server.identities.reader.token;
  return prng.weighted<() => Credential>([
    [14, () => ({ label: "reader", authorization: prng.pick([`Bearer ${reader}`, `bearer ${reader}`, `BEARER  ${reader}`]) })],
    [1, () => ({ label: "unauthenticated", authorization: undefined })],
    [1, () => ({ label: "unauthenticated", authorization: prng.string(prng.int(0, 64), PRINTABLE) })],
    [1, () => ({ label: "unauthenticated", authorization: `Bearer ${"A".repeat(10 * 1024)}` })],
    [1, () => ({ label: "unauthenticated", authorization: `Bearer tkv_${prng.string(43, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")}` })],
    [1, () => ({ label: "unauthenticated", authorization: prng.pick(["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", `Bearer ${reader} extra`, `Token ${reader}`, `Bearer ${reader.slice(0, -1)}`, `Bearer a.b.c`, `Bearer ${server.identities.writer.token.slice(0, 20)}`]) })],
  ])();
}

function writerCredential(): Credential {
  return { label: "writer", authorization: `Bearer ${server.identities.writer.token}` };
}

// ---------------------------------------------------------------------------------------------
// Health checks and the data snapshot.

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");

async function grpcHealthy(): Promise<void> {
  const request = encode(ReadRequestSchema, { primaryNamespace: "pages", secondaryNamespace: "sub", key: "k1" });
  const outcome = await raw.unary("/tierkv.v1.KVStoreService/Read", request, `Bearer ${server.identities.reader.token}`);
  expect(statusName(outcome.code), outcome.details).toBe("OK");
  expect(hex(fromBinary(ReadResponseSchema, outcome.messages[0]!).value)).toBe(hex(probeValue));
}

async function connectHealthy(): Promise<void> {
  const outcome = await send(
    server.httpBase,
    { kind: "health", method: "POST", path: "/tierkv.v1.KVStoreService/Read", headers: { "content-type": "application/json" }, body: Buffer.from(JSON.stringify({ primaryNamespace: "pages", secondaryNamespace: "sub", key: "k1" })) },
    `Bearer ${server.identities.reader.token}`,
  );
  expect(outcome.status, outcome.body.toString()).toBe(200);
  const body = JSON.parse(outcome.body.toString()) as { value: string };
  expect(Buffer.from(body.value, "base64").toString("hex")).toBe(hex(probeValue));
}

async function vssHealthy(vss: VssEndpoint): Promise<void> {
  const outcome = await send(
    vss.base,
    { kind: "health", method: "POST", path: "/getObject", headers: { "content-type": "application/octet-stream" }, body: encode(vss.requests.getObject, { storeId: "wallet", key: "k1" }) },
    `Bearer ${server.identities.reader.token}`,
  );
  expect(outcome.status, outcome.body.toString("hex")).toBe(200);
  const reply = fromBinary(vss.getObjectResponse, outcome.body) as unknown as { value?: { value: Uint8Array } };
  expect(hex(reply.value?.value ?? new Uint8Array())).toBe(Buffer.from("vss-k1").toString("hex"));
}

/** Every key of every store with its version, revision and a digest of its value (admin identity). */
async function snapshot(): Promise<string[]> {
  const lines: string[] = [];
  let pageToken = "";
  do {
    const page = await admin.listAllKeys({ allStores: true, pageToken, limit: 50 });
    for (const key of page.keys) {
      const stored = await admin.readVersioned(key);
      const digest = createHash("sha256").update(stored.value).digest("hex");
      lines.push(`${JSON.stringify([key.storeId, key.primaryNamespace, key.secondaryNamespace, key.key])} version=${key.version}/${stored.version} revision=${key.revision}/${stored.revision} bytes=${stored.value.byteLength} sha256=${digest}`);
    }
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Setup: the server, its data, real page tokens.

async function seed(): Promise<void> {
  const prng = prngFor("seed");
  const writer = new TierkvClient({ address: server.grpcAddress, bearerToken: server.identities.writer.token, timeoutMs: 10_000 });
  const writerB = new TierkvClient({ address: server.grpcAddress, bearerToken: server.identities.writerB.token, timeoutMs: 10_000 });
  try {
    const keys = Array.from({ length: 25 }, (_, i) => `k${i + 1}`);
    for (const key of keys) {
      const value = key === "k7" ? new Uint8Array(FUZZ_LIMITS.maxValueBytes) : key === "k8" ? new Uint8Array(0) : prng.bytes(prng.int(1, 64));
      await writer.write({ primaryNamespace: "pages", secondaryNamespace: "sub", key }, value);
    }
    // Revisions above 1, and a versioned write.
    probeValue = new Uint8Array(Buffer.from("probe-k1"));
    await writer.write({ primaryNamespace: "pages", secondaryNamespace: "sub", key: "k1" }, new Uint8Array([1]));
    await writer.write({ primaryNamespace: "pages", secondaryNamespace: "sub", key: "k1" }, probeValue);
    for (const key of ["o1", "o2", "o3", "o4", "o5"]) await writer.write({ primaryNamespace: "other", secondaryNamespace: "", key }, prng.bytes(8));
    await writer.write({ primaryNamespace: "", secondaryNamespace: "", key: "root" }, prng.bytes(8));
    await writer.write({ primaryNamespace: "pages", secondaryNamespace: "", key: "p1" }, prng.bytes(8));
    for (let i = 1; i <= 12; i++) await writerB.write({ primaryNamespace: "pages", secondaryNamespace: "sub", key: `b${i}` }, prng.bytes(8));

    const tokens: TokenCorpus = {
      pages: (await writer.listPage({ primaryNamespace: "pages", secondaryNamespace: "sub" }, { pageSize: 3 })).nextPageToken,
      otherNamespace: (await writer.listPage({ primaryNamespace: "other", secondaryNamespace: "" }, { pageSize: 2 })).nextPageToken,
      otherStore: (await writerB.listPage({ primaryNamespace: "pages", secondaryNamespace: "sub" }, { pageSize: 3 })).nextPageToken,
      cursor: (await writer.listAllKeys({ limit: 3 })).nextPageToken,
      otherStoreCursor: (await writerB.listAllKeys({ limit: 3 })).nextPageToken,
    };
    for (const [name, token] of Object.entries(tokens)) expect(token, name).not.toBe("");
    space = {
      primary: ["pages", "other", ""],
      secondary: ["sub", ""],
      keys: [...keys, "o1", "root", "p1", "absent"],
      tokens,
      maxValueBytes: FUZZ_LIMITS.maxValueBytes,
      maxBatchItems: FUZZ_LIMITS.maxBatchItems,
    };
  } finally {
    await writer.close();
    await writerB.close();
  }

  vssKeys = ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "absent"];
  vssToken = "";
  const vss = server.vss;
  if (vss !== undefined) {
    const writer = `Bearer ${server.identities.writer.token}`;
    const put = await send(vss.base, {
      kind: "seed", method: "POST", path: "/putObjects", headers: { "content-type": "application/octet-stream" },
      body: encode(vss.requests.putObjects, { storeId: "wallet", globalVersion: 0n, transactionItems: vssKeys.filter((k) => k !== "absent").map((key) => ({ key, version: 0n, value: Buffer.from(`vss-${key}`) })) }),
    }, writer);
    expect(put.status, put.body.toString()).toBe(200);
    const list = await send(vss.base, {
      kind: "seed", method: "POST", path: "/listKeyVersions", headers: { "content-type": "application/octet-stream" },
      body: encode(vss.requests.listKeyVersions, { storeId: "wallet", pageSize: 2 }),
    }, writer);
    expect(list.status).toBe(200);
    vssToken = (fromBinary(vss.listKeyVersionsResponse, list.body) as unknown as { nextPageToken?: string }).nextPageToken ?? "";
    expect(vssToken).not.toBe("");
  }
}

beforeAll(async () => {
  console.log(`fuzz seed: ${SEED} (replay with FUZZ_SEED=${SEED})`);
  server = await startFuzzServer();
  raw = new RawGrpc(server.grpcAddress);
  admin = new TierkvClient({ address: server.grpcAddress, bearerToken: server.identities.admin.token, timeoutMs: 10_000 });
  await seed();
  before = await snapshot();
  expect(before.length).toBeGreaterThan(40);
  if (server.vss === undefined) console.log(`VSS not fuzzed: ${server.vssSkipped}`);
});

afterAll(async () => {
  const lines = [`fuzz seed ${SEED}: inputs per surface and method`];
  for (const [key, count] of [...inputs].sort()) lines.push(`  ${key}: ${count}`);
  lines.push(`total: ${[...inputs.values()].reduce((a, b) => a + b, 0)}`);
  for (const [surface, histogram] of histograms) {
    lines.push(`status histogram, ${surface}:`);
    for (const [label, count] of [...histogram].sort((a, b) => b[1] - a[1])) lines.push(`  ${label}: ${count}`);
  }
  lines.push("input kinds:");
  for (const [kind, count] of [...kinds].sort((a, b) => b[1] - a[1])) lines.push(`  ${kind}: ${count}`);
  if (justified.length > 0) lines.push("justified INTERNAL:", ...justified.map((j) => `  ${j}`));
  if (connectOutsideHandlers.size > 0) lines.push("Connect/gRPC-Web INTERNAL decided outside tierkv's handlers:", ...[...connectOutsideHandlers].map(([m, n]) => `  ${m}: ${n}`));
  if (internals.length > 0) lines.push("UNJUSTIFIED INTERNAL:", ...internals.map((j) => `  ${j}`));
  if (server?.warnings.length) lines.push(`server warnings/errors logged: ${server.warnings.length}`, ...server.warnings.slice(0, 10).map((w) => `  ${w.slice(0, 300)}`));
  console.log(lines.join("\n"));
  raw?.close();
  await admin?.close();
  await server?.close();
  removeTempDirs();
});

// ---------------------------------------------------------------------------------------------
// gRPC.

interface GrpcTarget {
  readonly path: string;
  readonly method: DescMethod;
  readonly streaming: boolean;
  /** Whether success would have changed data (or needs a role the fuzz callers lack). */
  readonly mutating: boolean;
}

const GRPC_TARGETS: GrpcTarget[] = [...KVStoreService.methods, ...AdminService.methods].map((method) => ({
  path: `/${method.parent.typeName}/${method.name}`,
  method,
  streaming: method.methodKind === "server_streaming",
  mutating: ["Write", "Remove", "Txn", "Resync", "BackupStatus", "StoreUsage"].includes(method.name),
}));

/** A Watch the server accepts stays open until its deadline: fuzzed ones get a short one. */
const WATCH_DEADLINE_MS = 300;

function callGrpc(target: GrpcTarget, bytes: Buffer, credential: Credential): Promise<RawOutcome> {
  if (target.method.name === "Watch") return raw.serverStream(target.path, bytes, credential.authorization, WATCH_DEADLINE_MS);
  return target.streaming ? raw.serverStream(target.path, bytes, credential.authorization) : raw.unary(target.path, bytes, credential.authorization);
}

/** A Watch that answered (a progress message first) and then stayed open until its deadline: it was accepted. */
function watchAccepted(target: GrpcTarget, outcome: RawOutcome): boolean {
  return target.method.name === "Watch" && outcome.code === grpc.status.DEADLINE_EXCEEDED && outcome.messages.length > 0;
}

const NEVER: ReadonlySet<number> = new Set([grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.DEADLINE_EXCEEDED, grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.UNIMPLEMENTED, grpc.status.DATA_LOSS]);

/** What is wrong with `outcome` for a fuzz call, or undefined. */
function grpcProblem(target: GrpcTarget, input: FuzzInput, credential: Credential, outcome: RawOutcome, mustRefuse: boolean): string | undefined {
  const code = watchAccepted(target, outcome) ? grpc.status.OK : outcome.code;
  if (code === grpc.status.DEADLINE_EXCEEDED) return "no status within the deadline (a hang)";
  if (NEVER.has(code)) return `answered ${statusName(code)}`;
  if (credential.label === "unauthenticated" && code !== grpc.status.UNAUTHENTICATED && code !== grpc.status.RESOURCE_EXHAUSTED) return `an unauthenticated call was answered ${statusName(code)}`;
  if (code === grpc.status.OK) {
    if (target.mutating) return `succeeded for a ${credential.label}`;
    if (target.method.name === "Mutate") {
      const applied = fromBinary(MutateResponseSchema, outcome.messages[0]!).results.filter((r) => r.code === 0);
      if (applied.length > 0) return `${applied.length} mutation(s) of a ${credential.label} succeeded`;
    } else if (mustRefuse) return "an invalid request succeeded";
  }
  // A writer's request that does not decode must be refused as such, by every method.
  if (mustRefuse && input.init === undefined && code !== grpc.status.INVALID_ARGUMENT) return `undecodable request answered ${statusName(code)}`;
  return undefined;
}

function reportGrpc(target: GrpcTarget, input: FuzzInput, credential: Credential, outcome: RawOutcome, problems: string[], mustRefuse = false): void {
  tally("grpc", target.method.name, statusName(outcome.code), `grpc: ${input.kind}`);
  const problem = grpcProblem(target, input, credential, outcome, mustRefuse);
  const where = `${target.method.name} [${input.kind}, ${credential.label}] ${sample(input.bytes)}: ${statusName(outcome.code)} ${outcome.details.slice(0, 200)}`;
  if (outcome.code === grpc.status.INTERNAL || outcome.code === grpc.status.UNKNOWN) internals.push(where);
  if (problem !== undefined) problems.push(`${problem}: ${where}`);
}

describe("gRPC: every method of KVStoreService and AdminService", () => {
  for (const target of GRPC_TARGETS) {
    it(`${target.method.parent.name}.${target.method.name}: ${PER_GRPC_METHOD} inputs from read-only and unauthenticated callers`, async () => {
      const prng = prngFor(`grpc ${target.path}`);
      const cases = Array.from({ length: PER_GRPC_METHOD }, () => ({ input: fuzzInput(target.method.localName, target.method.input, prng, space), credential: fuzzCredential(prng) }));
      const problems: string[] = [];
      await inBatches(cases, async ({ input, credential }) => reportGrpc(target, input, credential, await callGrpc(target, input.bytes, credential), problems));
      expect(problems).toEqual([]);
      await grpcHealthy();
    });
  }

  it(`a write-role caller: ${WRITER_PER_GRPC_METHOD} invalid inputs per method, every one refused`, async () => {
    const problems: string[] = [];
    for (const target of GRPC_TARGETS) {
      const prng = prngFor(`grpc writer ${target.path}`);
      const cases = Array.from({ length: WRITER_PER_GRPC_METHOD }, () => invalidFor(target.method.localName, target.method.input, prng, space));
      await inBatches(cases, async (input) => reportGrpc(target, input, writerCredential(), await callGrpc(target, input.bytes, writerCredential()), problems, true));
      await grpcHealthy();
    }
    expect(problems).toEqual([]);
  });

  it("a request just above the message limit is RESOURCE_EXHAUSTED; one at --max-value-bytes + 1 is INVALID_ARGUMENT", async () => {
    const target = GRPC_TARGETS.find((t) => t.method.name === "Write")!;
    const limit = messageLimitBytes(FUZZ_LIMITS);
    const ref = { primaryNamespace: "pages", secondaryNamespace: "sub", key: "k2" };
    const cases: [string, Init, number][] = [
      ["value of max-value-bytes + 1", { ...ref, value: new Uint8Array(FUZZ_LIMITS.maxValueBytes + 1) }, grpc.status.INVALID_ARGUMENT],
      ["message of the limit + 1", { ...ref, value: new Uint8Array(limit) }, grpc.status.RESOURCE_EXHAUSTED],
      ["message of 4 MiB", { ...ref, value: new Uint8Array(4 * 1024 * 1024) }, grpc.status.RESOURCE_EXHAUSTED],
    ];
    for (const [kind, init, expected] of cases) {
      const input = { kind: `over-size: ${kind}`, bytes: encode(target.method.input, init), init };
      const outcome = await callGrpc(target, input.bytes, writerCredential());
      reportGrpc(target, input, writerCredential(), outcome, [], true);
      expect(statusName(outcome.code), `${kind}: ${outcome.details}`).toBe(statusName(expected));
    }
    await grpcHealthy();
  });
});

// ---------------------------------------------------------------------------------------------
// Connect and gRPC-Web.

const CONNECT_METHODS = KVStoreService.methods;
const MUTATING_CONNECT = new Set(["Write", "Remove", "Txn"]);

/** INTERNAL answers of the Connect surface decided outside tierkv's handlers (see above), by message. */
const connectOutsideHandlers = new Map<string, number>();

function isOutsideHandlers(verdict: ConnectVerdict): boolean {
  return verdict.internal && CONNECT_INTERNAL_OUTSIDE_HANDLERS.some((pattern) => pattern.test(verdict.errorMessage ?? ""));
}

function connectProblem(method: DescMethod, credential: Credential, outcome: HttpOutcome, mustRefuse: boolean): string | undefined {
  if (outcome.status === 0) return `no answer: ${outcome.error}`;
  const verdict = classifyConnect(outcome);
  if (verdict.internal && !isOutsideHandlers(verdict)) return `answered ${verdict.label}`;
  if (!verdict.ok) return undefined;
  if (credential.label === "unauthenticated") return "an unauthenticated call succeeded";
  if (MUTATING_CONNECT.has(method.name)) return `succeeded for a ${credential.label}`;
  if (method.name === "Mutate") {
    const applied = mutateResultCodes(verdict, MutateResponseSchema).filter((code) => code === 0);
    if (applied.length > 0) return `${applied.length} mutation(s) of a ${credential.label} succeeded`;
  } else if (mustRefuse) return "an invalid request succeeded";
  return undefined;
}

function reportConnect(method: DescMethod, request: HttpRequest, credential: Credential, outcome: HttpOutcome, problems: string[], mustRefuse = false): void {
  const verdict: ConnectVerdict = outcome.status === 0 ? { label: "no answer", ok: false, internal: true } : classifyConnect(outcome);
  const outside = isOutsideHandlers(verdict);
  tally("connect", method.name, outside ? `${verdict.label} (${verdict.errorMessage?.split(":")[0]})` : verdict.label, `connect: ${request.kind}`);
  const where = `${method.name} [${request.kind}, ${credential.label}] ${request.method} ${request.path} ${JSON.stringify(request.headers)} ${sample(request.body)}: ${verdict.label} ${(verdict.errorMessage ?? outcome.error ?? "").slice(0, 200)}`;
  if (outside) {
    const key = verdict.errorMessage!.startsWith("parse binary") ? "parse binary: … (connect-es Code.Internal)" : verdict.errorMessage!;
    connectOutsideHandlers.set(key, (connectOutsideHandlers.get(key) ?? 0) + 1);
  } else if (verdict.internal) internals.push(where);
  const problem = connectProblem(method, credential, outcome, mustRefuse);
  if (problem !== undefined) problems.push(`${problem}: ${where}`);
}

/** A Watch the server accepts stays open until its deadline: fuzzed ones set a short one (Connect's and gRPC-Web's header). */
function withWatchDeadline(method: DescMethod, request: HttpRequest): HttpRequest {
  if (method.name !== "Watch") return request;
  return { ...request, headers: { ...request.headers, "connect-timeout-ms": String(WATCH_DEADLINE_MS), "grpc-timeout": `${WATCH_DEADLINE_MS}m` } };
}

/** JSON for `schema` with one field of the wrong JSON type; undefined when the decoder would accept it. */
function wrongTypeJson(schema: DescMessage, prng: Prng): Buffer | undefined {
  const field = prng.pick(schema.fields);
  const wrong: JsonValue = prng.pick<JsonValue>([5, -1.5, true, {}, [], "not a number", "%%%", null, [1, "x"], { case: "write" }]);
  const json: Record<string, JsonValue> = { [field.jsonName]: wrong };
  try {
    fromJson(schema, json);
    return undefined;
  } catch {
    return Buffer.from(JSON.stringify(json));
  }
}

/** A Connect request a write-role caller must see refused (see `invalidFor`). */
function connectInvalidRequest(method: DescMethod, prng: Prng): HttpRequest {
  const path = `/${KVStoreService.typeName}/${method.name}`;
  const schema = method.input;
  for (;;) {
    const form = prng.weighted<string>([[3, "json invalid"], [2, "json broken"], [2, "json wrong type"], [2, "proto"], [1, "grpc-web"], [1, "content-type"]]);
    const input = invalidFor(method.localName, schema, prng, space);
    switch (form) {
      case "json invalid":
        if (input.init === undefined) continue;
        return { kind: "json: structured (invalid)", method: "POST", path, headers: { "content-type": "application/json" }, body: Buffer.from(toJsonString(schema, create(schema, input.init as MessageInitShape<DescMessage>))) };
      case "json broken": {
        const text = toJsonString(schema, create(schema, validSample(method.localName, prng, space) as MessageInitShape<DescMessage>));
        return { kind: "json: truncated", method: "POST", path, headers: { "content-type": "application/json" }, body: Buffer.from(text.slice(0, prng.int(0, text.length - 1))) };
      }
      case "json wrong type": {
        const body = wrongTypeJson(schema, prng);
        if (body === undefined) continue;
        return { kind: "json: wrong field type", method: "POST", path, headers: { "content-type": "application/json" }, body };
      }
      case "proto":
        if (input.init !== undefined) continue;
        return { kind: `proto: ${input.kind}`, method: "POST", path, headers: { "content-type": "application/proto" }, body: input.bytes };
      case "grpc-web":
        if (input.init !== undefined) continue;
        return { kind: `grpc-web: ${input.kind}`, method: "POST", path, headers: { "content-type": "application/grpc-web+proto" }, body: grpcWebFrame(input.bytes) };
      default: {
        // A valid message under a content type Connect does not serve: refused unread.
        const valid = encode(schema, validSample(method.localName, prng, space));
        return { kind: "valid message, wrong content type", method: "POST", path, headers: { "content-type": prng.pick(["text/plain", "application/xml", "application/x-www-form-urlencoded"]) }, body: valid };
      }
    }
  }
}

describe("Connect (JSON, binary) and gRPC-Web", () => {
  for (const method of CONNECT_METHODS) {
    it(`${method.name}: ${PER_HTTP_ENDPOINT} requests from read-only and unauthenticated callers`, async () => {
      const prng = prngFor(`connect ${method.name}`);
      const cases = Array.from({ length: PER_HTTP_ENDPOINT }, () => {
        const input = fuzzInput(method.localName, method.input, prng, space);
        return { request: withWatchDeadline(method, connectRequest(method.name, method.input, prng, input, KVStoreService.typeName)), credential: fuzzCredential(prng) };
      });
      const problems: string[] = [];
      await inBatches(cases, async ({ request, credential }) => reportConnect(method, request, credential, await send(server.httpBase, request, credential.authorization), problems));
      expect(problems).toEqual([]);
      await connectHealthy();
    });
  }

  // Found by this fuzzer: connect-es answered such a body 500 internal "parse binary: …" before
  // any handler ran; src/server/connect-service.ts now checks the body first.
  it("answers a binary body that does not decode INVALID_ARGUMENT, as the gRPC port does", async () => {
    const truncated = encode(ReadRequestSchema, { primaryNamespace: "pages", secondaryNamespace: "sub", key: "k1" }).subarray(0, 5);
    for (const [contentType, body] of [["application/proto", truncated], ["application/grpc-web+proto", grpcWebFrame(truncated)]] as const) {
      const outcome = await send(server.httpBase, { kind: "pinned", method: "POST", path: "/tierkv.v1.KVStoreService/Read", headers: { "content-type": contentType }, body }, `Bearer ${server.identities.reader.token}`);
      const verdict = classifyConnect(outcome);
      expect(verdict.label, `${contentType}: ${verdict.errorMessage}`).toMatch(/400 invalid_argument|INVALID_ARGUMENT/);
    }
  });

  it(`a write-role caller: ${WRITER_PER_HTTP_ENDPOINT} invalid requests per method, every one refused`, async () => {
    const problems: string[] = [];
    for (const method of CONNECT_METHODS) {
      const prng = prngFor(`connect writer ${method.name}`);
      const cases = Array.from({ length: WRITER_PER_HTTP_ENDPOINT }, () => withWatchDeadline(method, connectInvalidRequest(method, prng)));
      const credential = writerCredential();
      await inBatches(cases, async (request) => reportConnect(method, request, credential, await send(server.httpBase, request, credential.authorization), problems, true));
      await connectHealthy();
    }
    expect(problems).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// VSS.

const VSS_STATUSES: ReadonlySet<number> = new Set([200, 400, 401, 404, 405, 409, 413]);

function reportVss(vss: VssEndpoint, operation: string, request: HttpRequest, credential: Credential, outcome: HttpOutcome, problems: string[], mustRefuse = false): void {
  const label = outcome.status === 0 ? "no answer" : `http ${outcome.status}`;
  tally("vss", operation, label, `vss: ${request.kind}`);
  const where = `${operation} [${request.kind}, ${credential.label}] ${request.method} ${request.path} ${sample(request.body)}: ${label} ${outcome.error ?? ""}`;
  if (outcome.status >= 500) internals.push(where);
  let problem: string | undefined;
  if (outcome.status === 0) problem = "no answer";
  else if (!VSS_STATUSES.has(outcome.status)) problem = `answered ${outcome.status}`;
  else if (outcome.headers.get("vss-protocol-version") === null) problem = "no vss-protocol-version header";
  else if (credential.label === "unauthenticated" && outcome.status !== 401 && outcome.status !== 405 && !(outcome.status === 400 && request.kind === "wrong path")) problem = `an unauthenticated call was answered ${outcome.status}`;
  else if (mustRefuse && outcome.status === 200) problem = "an invalid request succeeded";
  else if (outcome.status !== 200 && outcome.status !== 405) {
    // Every refusal is an ErrorResponse.
    try {
      fromBinary(vss.errorResponse, outcome.body);
    } catch {
      problem = "the refusal is not an ErrorResponse";
    }
  }
  if (problem !== undefined) problems.push(`${problem}: ${where}`);
}

describe("VSS", () => {
  it(`every endpoint: ${PER_HTTP_ENDPOINT} requests each from read-only and unauthenticated callers`, async (context) => {
    const vss = server.vss;
    if (vss === undefined) return context.skip();
    const problems: string[] = [];
    for (const operation of VSS_OPERATIONS) {
      const prng = prngFor(`vss ${operation}`);
      const cases = Array.from({ length: PER_HTTP_ENDPOINT }, () => ({ request: vssRequest(operation, vss.requests, prng, vssKeys, vssToken, FUZZ_LIMITS.maxValueBytes), credential: fuzzCredential(prng) }));
      await inBatches(cases, async ({ request, credential }) => reportVss(vss, operation, request, credential, await send(vss.base, request, credential.authorization), problems));
      await vssHealthy(vss);
    }
    expect(problems).toEqual([]);
  });

  it(`a write-role caller: ${WRITER_PER_HTTP_ENDPOINT} invalid requests per endpoint, every one refused`, async (context) => {
    const vss = server.vss;
    if (vss === undefined) return context.skip();
    const problems: string[] = [];
    const credential = writerCredential();
    for (const operation of VSS_OPERATIONS) {
      const prng = prngFor(`vss writer ${operation}`);
      const cases = Array.from({ length: WRITER_PER_HTTP_ENDPOINT }, () => vssInvalidRequest(operation, vss.requests, prng, vssKeys, vssToken, FUZZ_LIMITS.maxValueBytes));
      await inBatches(cases, async (request) => reportVss(vss, operation, request, credential, await send(vss.base, request, credential.authorization), problems, true));
      await vssHealthy(vss);
    }
    expect(problems).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Raw HTTP/2: what no gRPC client sends.

interface H2Answer {
  readonly status: number | undefined;
  readonly grpcStatus: number | undefined;
  readonly message: string;
  readonly error?: string;
}

function h2Call(session: ClientHttp2Session, headers: Record<string, string>, body: Buffer, endStream = true): Promise<H2Answer> {
  return new Promise((resolve) => {
    let status: number | undefined;
    let grpcStatus: number | undefined;
    let message = "";
    const finish = (answer: H2Answer): void => {
      clearTimeout(timer);
      resolve(answer);
    };
    const take = (h: IncomingHttpHeaders & IncomingHttpStatusHeader): void => {
      if (h[":status"] !== undefined) status = Number(h[":status"]);
      if (h["grpc-status"] !== undefined) grpcStatus = Number(h["grpc-status"]);
      if (typeof h["grpc-message"] === "string") message = decodeURIComponent(h["grpc-message"]);
      // A status ends the call for the server, even while our side of the stream stays open.
      if (grpcStatus !== undefined) finish({ status, grpcStatus, message });
    };
    const stream = session.request({ ":method": "POST", "content-type": "application/grpc", te: "trailers", ...headers });
    const timer = setTimeout(() => {
      stream.close();
      resolve({ status, grpcStatus, message, error: "no answer within the deadline" });
    }, CALL_DEADLINE_MS);
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("data", () => {});
    stream.on("error", (error) => finish({ status, grpcStatus, message, error: error.message }));
    stream.on("close", () => finish({ status, grpcStatus, message, ...(stream.rstCode ? { error: `RST_STREAM ${stream.rstCode}` } : {}) }));
    if (endStream) stream.end(body);
    else stream.write(body);
  });
}

function frame(message: Buffer, flag = 0, length = message.length): Buffer {
  return grpcWebFrame(message, flag, length);
}

describe("raw HTTP/2 framing on the gRPC port", () => {
  it("huge gRPC length prefixes, lying lengths, compression flags, extra messages and odd headers get a status, never a hang", async () => {
    const reader = `Bearer ${server.identities.reader.token}`;
    const read = "/tierkv.v1.KVStoreService/Read";
    const valid = encode(ReadRequestSchema, { primaryNamespace: "pages", secondaryNamespace: "sub", key: "k1" });
    const prng = prngFor("h2");
    const cases: { name: string; headers: Record<string, string>; body: Buffer; endStream?: boolean; expect?: number[] }[] = [
      { name: "length prefix 2^32-1, 10 bytes sent", headers: { ":path": read, authorization: reader }, body: frame(prng.bytes(10), 0, 0xffffffff), expect: [grpc.status.RESOURCE_EXHAUSTED] },
      { name: "length prefix 2^31, 10 bytes sent", headers: { ":path": read, authorization: reader }, body: frame(prng.bytes(10), 0, 2 ** 31), expect: [grpc.status.RESOURCE_EXHAUSTED] },
      { name: "length prefix above the limit, 10 bytes sent", headers: { ":path": read, authorization: reader }, body: frame(prng.bytes(10), 0, messageLimitBytes(FUZZ_LIMITS) + 1), expect: [grpc.status.RESOURCE_EXHAUSTED] },
      { name: "length prefix 1000, 10 bytes sent, then END_STREAM", headers: { ":path": read, authorization: reader }, body: frame(prng.bytes(10), 0, 1000) },
      // The caller's own deadline ends the wait for the rest of the message.
      { name: "length prefix 1000, 10 bytes sent, stream left open", headers: { ":path": read, authorization: reader, "grpc-timeout": "1S" }, body: frame(prng.bytes(10), 0, 1000), endStream: false, expect: [grpc.status.DEADLINE_EXCEEDED] },
      { name: "three bytes of a frame header", headers: { ":path": read, authorization: reader }, body: Buffer.from([0, 0, 0]) },
      { name: "no message at all", headers: { ":path": read, authorization: reader }, body: Buffer.alloc(0) },
      { name: "two messages for a unary method", headers: { ":path": read, authorization: reader }, body: Buffer.concat([frame(valid), frame(valid)]) },
      { name: "compressed flag without grpc-encoding", headers: { ":path": read, authorization: reader }, body: frame(valid, 1) },
      { name: "gzip encoding with a body that is not gzip", headers: { ":path": read, authorization: reader, "grpc-encoding": "gzip" }, body: frame(prng.bytes(20), 1) },
      { name: "unknown grpc-encoding", headers: { ":path": read, authorization: reader, "grpc-encoding": "br" }, body: frame(valid, 1), expect: [grpc.status.UNIMPLEMENTED] },
      { name: "flag byte 0x80", headers: { ":path": read, authorization: reader }, body: frame(valid, 0x80) },
      { name: "grpc-timeout garbage", headers: { ":path": read, authorization: reader, "grpc-timeout": "99999999999H" }, body: frame(valid) },
      { name: "grpc-timeout unparsable", headers: { ":path": read, authorization: reader, "grpc-timeout": "soon" }, body: frame(valid) },
      { name: "content-type application/json", headers: { ":path": read, authorization: reader, "content-type": "application/json" }, body: Buffer.from("{}") },
      { name: "unknown method", headers: { ":path": "/tierkv.v1.KVStoreService/Drop", authorization: reader }, body: frame(valid), expect: [grpc.status.UNIMPLEMENTED] },
      { name: "unknown service", headers: { ":path": "/tierkv.v2.Nope/Read", authorization: reader }, body: frame(valid), expect: [grpc.status.UNIMPLEMENTED] },
      { name: "bearer of 100 KB", headers: { ":path": read, authorization: `Bearer ${"A".repeat(100 * 1024)}` }, body: frame(valid) },
      { name: "authorization repeated", headers: { ":path": read, authorization: `${reader}, Bearer other` }, body: frame(valid), expect: [grpc.status.UNAUTHENTICATED] },
      { name: "Resync: huge length prefix", headers: { ":path": "/tierkv.v1.AdminService/Resync", authorization: reader }, body: frame(Buffer.alloc(0), 0, 0xfffffff0), expect: [grpc.status.RESOURCE_EXHAUSTED] },
    ];
    const problems: string[] = [];
    for (const c of cases) {
      // A session per case: a reset or GOAWAY for one case must not decide the next.
      const session = http2Connect(`http://${server.grpcAddress}`);
      session.on("error", () => {});
      try {
        const answer = await h2Call(session, c.headers, c.body, c.endStream ?? true);
        const code = answer.grpcStatus;
        const label = code === undefined ? `no grpc-status (HTTP ${answer.status ?? "-"}, ${answer.error ?? "closed"})` : statusName(code);
        tally("http2", c.name, label, "http2: framing");
        const where = `${c.name}: ${label} ${answer.message.slice(0, 200)}`;
        if (answer.error === "no answer within the deadline") problems.push(`hang: ${where}`);
        else if (code === grpc.status.INTERNAL || code === grpc.status.UNKNOWN || (code === undefined && answer.status === undefined)) {
          if (JUSTIFIED_INTERNAL[c.name] !== undefined) justified.push(`${where} — ${JUSTIFIED_INTERNAL[c.name]}`);
          else {
            internals.push(where);
            problems.push(where);
          }
        } else if (c.expect !== undefined && !c.expect.includes(code ?? -1)) problems.push(`expected ${c.expect.map(statusName).join(" or ")}: ${where}`);
      } finally {
        session.destroy();
      }
    }
    expect(problems).toEqual([]);
    await grpcHealthy();
  });
});

// ---------------------------------------------------------------------------------------------

describe("afterwards", () => {
  it("the server is healthy on every surface and no internal failure was logged", async () => {
    await grpcHealthy();
    await connectHealthy();
    if (server.vss !== undefined) await vssHealthy(server.vss);
    expect(server.internalFailures).toEqual([]);
    expect(internals).toEqual([]);
  });

  it("the stored data is byte-for-byte what it was before the fuzzing", async () => {
    const after = await snapshot();
    expect(after).toEqual(before);
  });
});
