//! HTTP fuzzing: Connect (JSON and binary) and gRPC-Web requests for KVStoreService methods, VSS
//! requests, and how their answers are classified (status histogram, internal failures).

import { request as httpRequest } from "node:http";
import { create, fromBinary, fromJson, toJsonString, type DescMessage, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import type { Prng } from "./prng.js";
import { CALL_DEADLINE_MS } from "./raw-grpc.js";
import { encode, type FuzzInput, type Init } from "./inputs.js";
import { MUTATORS } from "./wire.js";

export interface HttpRequest {
  readonly kind: string;
  readonly method: string;
  /** Path (and query) under the base URL. */
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
}

export interface HttpOutcome {
  /** 0 when no answer came (a hang or a dropped connection): never acceptable. */
  readonly status: number;
  readonly headers: Headers;
  readonly body: Buffer;
  /** Set when no answer came. */
  readonly error?: string;
  /** How long the answer took. */
  readonly ms: number;
}

/**
 * Sends `request` on a connection of its own with a 5 s deadline; never rejects. node:http rather
 * than fetch: undici's fetch (Node 20) can stall when a server answers before it has read a large
 * request body and then closes the connection, which is what a server should do; node:http reports
 * the answer as it arrives.
 */
export function send(base: string, request: HttpRequest, authorization: string | undefined): Promise<HttpOutcome> {
  const headers: Record<string, string | number> = { ...request.headers, ...(authorization !== undefined && { authorization }) };
  if (request.body !== undefined) headers["content-length"] = request.body.byteLength;
  const started = Date.now();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: Omit<HttpOutcome, "ms">): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...outcome, ms: Date.now() - started });
    };
    const noAnswer = (error: string): void => finish({ status: 0, headers: new Headers(), body: Buffer.alloc(0), error });
    const outgoing = httpRequest(`${base}${request.path}`, { method: request.method, headers, agent: false });
    const timer = setTimeout(() => {
      noAnswer("no answer within the deadline");
      outgoing.destroy();
    }, CALL_DEADLINE_MS);
    outgoing.on("response", (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        const responseHeaders = new Headers();
        // HTTP/1.1 trailers (gRPC over HTTP/1.1 puts its status there) count as headers here.
        for (const [name, value] of [...Object.entries(response.headers), ...Object.entries(response.trailers)]) {
          if (value !== undefined) responseHeaders.set(name, Array.isArray(value) ? value.join(", ") : value);
        }
        finish({ status: response.statusCode ?? 0, headers: responseHeaders, body: Buffer.concat(chunks) });
      });
      response.on("error", (error) => noAnswer(`response: ${error.message}`));
    });
    // A server that answers early and closes may reset the rest of the upload: only an error
    // before any answer counts.
    outgoing.on("error", (error) => noAnswer(error.message));
    outgoing.end(request.body);
  });
}

// ---------------------------------------------------------------------------------------------
// Random JSON.

const JSON_STRINGS = ["", "pages", "sub", "k1", "tenant-a", "tenant-b", "a/b", "\ud800", "\u0000", "é", "😀", "9223372036854775807", "18446744073709551616", "-1", "NaN", "Infinity", "1e400", "AAAA", "!!!", "x".repeat(500)];

export function randomJson(prng: Prng, depth = 0): JsonValue {
  const leaf = (): JsonValue =>
    prng.weighted<() => JsonValue>([
      [1, () => null],
      [1, () => prng.chance(0.5)],
      [2, () => prng.pick([0, -1, 1, 2 ** 31, -(2 ** 31) - 1, 2 ** 53 + 1, 1e308, -1e-308, 0.5, prng.int(-1e9, 1e9)])],
      [3, () => prng.pick(JSON_STRINGS)],
    ])();
  if (depth > 3) return leaf();
  return prng.weighted<() => JsonValue>([
    [4, leaf],
    [1, () => Array.from({ length: prng.int(0, 4) }, () => randomJson(prng, depth + 1))],
    [2, () => Object.fromEntries(Array.from({ length: prng.int(0, 4) }, () => [prng.pick(["a", "key", "value", "@type", "__proto__", "constructor"]), randomJson(prng, depth + 1)]))],
  ])();
}

/** A JSON object with the schema's field names (JSON and proto names) set to random JSON values. */
function fieldSoup(schema: DescMessage, prng: Prng): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  const count = prng.int(1, Math.max(1, schema.fields.length));
  for (let i = 0; i < count; i++) {
    const fields: readonly { jsonName: string; name: string }[] = schema.fields.length > 0 ? schema.fields : [{ jsonName: "unknownField", name: "unknown_field" }];
    const field = prng.pick(fields);
    out[prng.chance(0.7) ? field.jsonName : field.name] = randomJson(prng, 1);
  }
  return out;
}

function deepJson(depth: number, kind: "array" | "object"): string {
  return kind === "array" ? `${"[".repeat(depth)}${"]".repeat(depth)}` : `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
}

/** A JSON body for a request of `schema`: a structured message, random JSON, or broken JSON text. */
export function jsonBody(schema: DescMessage, prng: Prng, input: FuzzInput): { kind: string; body: Buffer } {
  const text = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
  return prng.weighted<() => { kind: string; body: Buffer }>([
    [3, () => (input.init === undefined ? { kind: "json: field soup", body: text(fieldSoup(schema, prng)) } : { kind: "json: structured", body: Buffer.from(toJsonString(schema, create(schema, input.init as MessageInitShape<DescMessage>))) })],
    [3, () => ({ kind: "json: field soup", body: text(fieldSoup(schema, prng)) })],
    [2, () => ({ kind: "json: random", body: text(randomJson(prng)) })],
    [1, () => {
      const full = text(fieldSoup(schema, prng));
      return { kind: "json: truncated", body: full.subarray(0, prng.int(0, Math.max(0, full.length - 1))) };
    }],
    [1, () => ({ kind: "json: random bytes", body: prng.bytes(prng.int(0, 256)) })],
    [1, () => ({ kind: "json: deep nesting", body: Buffer.from(deepJson(prng.int(100, 50_000), prng.pick(["array", "object"]))) })],
    [1, () => ({ kind: "json: lone surrogates and NULs", body: Buffer.from(`{"${schema.fields[0]?.jsonName ?? "x"}":"\\ud800\\u0000\\udfff","key":"\\udbff"}`) })],
  ])();
}

/** A gRPC-Web frame: flag byte, 4-byte length, message (the length may lie). */
export function grpcWebFrame(message: Buffer, flag = 0, length = message.byteLength): Buffer {
  const header = Buffer.alloc(5);
  header[0] = flag;
  header.writeUInt32BE(length >>> 0, 1);
  return Buffer.concat([header, message]);
}

const WRONG_CONTENT_TYPES = [
  "text/plain",
  "application/xml",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/json; charset=utf-16",
  "application/connect+proto",
  "application/connect+json",
  "application/grpc",
  "application/grpc+proto",
  "application/grpc-web-text",
  "application/octet-stream",
  "*/*",
  "",
];

/** One HTTP request for a Connect method (`service/Method`) carrying fuzz input. */
export function connectRequest(method: string, schema: DescMessage, prng: Prng, input: FuzzInput, servicePath: string): HttpRequest {
  const path = `/${servicePath}/${method}`;
  const form = prng.weighted<"json" | "proto" | "grpc-web" | "content-type" | "http-method" | "headers">([
    [4, "json"],
    [3, "proto"],
    [2, "grpc-web"],
    [1, "content-type"],
    [1, "http-method"],
    [1, "headers"],
  ]);
  switch (form) {
    case "json": {
      const { kind, body } = jsonBody(schema, prng, input);
      return { kind, method: "POST", path, headers: { "content-type": "application/json" }, body };
    }
    case "proto":
      return { kind: `proto: ${input.kind}`, method: "POST", path, headers: { "content-type": "application/proto" }, body: input.bytes };
    case "grpc-web": {
      const variant = prng.weighted<() => { kind: string; body: Buffer }>([
        [4, () => ({ kind: `grpc-web: ${input.kind}`, body: grpcWebFrame(input.bytes) })],
        [1, () => ({ kind: "grpc-web: compressed flag", body: grpcWebFrame(input.bytes, 1) })],
        [1, () => ({ kind: "grpc-web: trailer flag", body: grpcWebFrame(input.bytes, 0x80) })],
        [1, () => ({ kind: "grpc-web: lying length", body: grpcWebFrame(input.bytes, 0, prng.pick([input.bytes.length + 1, 0xffffffff, 2 ** 31])) })],
        [1, () => ({ kind: "grpc-web: two frames", body: Buffer.concat([grpcWebFrame(input.bytes), grpcWebFrame(input.bytes)]) })],
        [1, () => ({ kind: "grpc-web: short header", body: Buffer.from([0, 0, 0]) })],
      ])();
      return { kind: variant.kind, method: "POST", path, headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" }, body: variant.body };
    }
    case "content-type": {
      const contentType = prng.pick(WRONG_CONTENT_TYPES);
      const headers: Record<string, string> = contentType === "" ? {} : { "content-type": contentType };
      return { kind: `content-type ${JSON.stringify(contentType)}`, method: "POST", path, headers, body: prng.chance(0.5) ? input.bytes : Buffer.from("{}") };
    }
    case "http-method": {
      const verb = prng.pick(["GET", "PUT", "DELETE", "PATCH", "HEAD"]);
      const query = verb === "GET" && prng.chance(0.5) ? `?encoding=json&message=${encodeURIComponent(JSON.stringify(randomJson(prng)))}` : "";
      return { kind: `HTTP ${verb}`, method: verb, path: `${path}${query}`, headers: { "content-type": "application/json" }, ...(verb !== "GET" && verb !== "HEAD" && { body: Buffer.from("{}") }) };
    }
    case "headers": {
      const headers = prng.pick<Record<string, string>>([
        { "content-type": "application/json", "connect-protocol-version": "2" },
        { "content-type": "application/json", "connect-timeout-ms": prng.pick(["abc", "-1", "0", "99999999999999999999", "1.5"]) },
        { "content-type": "application/json", "content-encoding": prng.pick(["gzip", "br", "zstd", "identity, gzip"]) },
        { "content-type": "application/proto", "connect-content-encoding": "gzip" },
        { "content-type": "application/grpc-web+proto", "grpc-timeout": prng.pick(["1n", "999999999H", "abc", "-5S"]) },
      ]);
      return { kind: `headers ${Object.keys(headers).filter((h) => h !== "content-type").join(",")}`, method: "POST", path, headers, body: input.bytes };
    }
  }
}

export interface ConnectVerdict {
  /** For the histogram: "connect 400 invalid_argument", "grpc-web INVALID_ARGUMENT", "http 415". */
  readonly label: string;
  /** A success (HTTP 200 and, for gRPC-Web, grpc-status 0). */
  readonly ok: boolean;
  /** An internal failure (500, internal, unknown). */
  readonly internal: boolean;
  /** The response message of a success, decoded when possible. */
  readonly message?: Buffer | JsonValue;
  /** The error message of a failure (Connect's `message`, gRPC-Web's grpc-message). */
  readonly errorMessage?: string;
}

/** Reads a gRPC-Web response body: data frames and the status in the trailer frame (or headers). */
export function parseGrpcWeb(outcome: HttpOutcome): { status: number | undefined; message: string; data: Buffer[] } {
  const data: Buffer[] = [];
  let status = outcome.headers.get("grpc-status") === null ? undefined : Number(outcome.headers.get("grpc-status"));
  let message = outcome.headers.get("grpc-message") ?? "";
  let at = 0;
  const body = outcome.body;
  while (at + 5 <= body.length) {
    const flag = body[at]!;
    const length = body.readUInt32BE(at + 1);
    const payload = body.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if (flag & 0x80) {
      for (const line of payload.toString("latin1").split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon < 0) continue;
        const key = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        if (key === "grpc-status") status = Number(value);
        if (key === "grpc-message") message = decodeURIComponent(value);
      }
    } else data.push(payload);
  }
  return { status, message, data };
}

const GRPC_NAMES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];

export function classifyConnect(outcome: HttpOutcome): ConnectVerdict {
  if (outcome.status === 0) return { label: `no answer (${outcome.error})`, ok: false, internal: true };
  const contentType = outcome.headers.get("content-type") ?? "";
  if (contentType.startsWith("application/grpc") && !contentType.startsWith("application/grpc-web")) {
    // gRPC over HTTP/1.1: the status travels in the headers or the trailers.
    const header = outcome.headers.get("grpc-status");
    const status = header === null ? undefined : Number(header);
    const name = status === undefined ? "no grpc-status" : (GRPC_NAMES[status] ?? `code ${status}`);
    return { label: `grpc/http1 ${outcome.status} ${name}`, ok: status === 0, internal: status === 2 || status === 13 || outcome.status >= 500, errorMessage: decodeURIComponent(outcome.headers.get("grpc-message") ?? "") };
  }
  if (contentType.startsWith("application/grpc-web")) {
    const { status, message, data } = parseGrpcWeb(outcome);
    const name = status === undefined ? "no grpc-status" : (GRPC_NAMES[status] ?? `code ${status}`);
    return {
      label: `grpc-web ${outcome.status} ${name}`,
      ok: status === 0,
      internal: status === undefined || status === 2 || status === 13 || outcome.status >= 500,
      errorMessage: message,
      ...(data[0] !== undefined && { message: data[0] }),
    };
  }
  if (outcome.status === 200) {
    let message: Buffer | JsonValue = outcome.body;
    if (contentType.startsWith("application/json")) message = JSON.parse(outcome.body.toString("utf8")) as JsonValue;
    return { label: "connect 200 ok", ok: true, internal: false, message };
  }
  let code = "";
  let errorMessage = "";
  if (contentType.startsWith("application/json")) {
    try {
      const error = JSON.parse(outcome.body.toString("utf8")) as { code?: unknown; message?: unknown };
      code = String(error.code ?? "");
      errorMessage = String(error.message ?? "");
    } catch {
      code = "unparsable error body";
    }
  }
  const label = `${code === "" ? "http" : "connect"} ${outcome.status}${code === "" ? "" : ` ${code}`}`;
  // 501 unimplemented (an unknown compression) and 503 unavailable are the caller's or transient.
  const internal = code === "internal" || code === "unknown" || code === "data_loss" || (code === "" && outcome.status >= 500 && outcome.status !== 501 && outcome.status !== 503);
  return { label, ok: false, internal, errorMessage };
}

/** The results of a Mutate success in any encoding, for the "nothing applied" check. */
export function mutateResultCodes(verdict: ConnectVerdict, schema: DescMessage): number[] {
  const message = verdict.message;
  if (message === undefined) return [];
  if (Buffer.isBuffer(message)) {
    const decoded = fromBinary(schema, message) as unknown as { results: { code: number }[] };
    return decoded.results.map((r) => r.code);
  }
  const decoded = fromJson(schema, message) as unknown as { results: { code: number }[] };
  return decoded.results.map((r) => r.code);
}

// ---------------------------------------------------------------------------------------------
// VSS.

/** The VSS request schemas, by operation. */
export interface VssSchemas {
  readonly getObject: DescMessage;
  readonly putObjects: DescMessage;
  readonly deleteObject: DescMessage;
  readonly listKeyVersions: DescMessage;
}

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

function vssStoreId(prng: Prng): string {
  return prng.weighted<() => string>([
    [6, () => "wallet"],
    [1, () => ""],
    [1, () => prng.pick(["other", "wallet ", "WALLET", "é", "😀".repeat(30)])],
    [1, () => prng.pick(["x".repeat(121), "x".repeat(120), "x".repeat(5000), "a\u0001b", "\u0085", "w:allet", "%3A"])],
  ])();
}

function vssKey(prng: Prng, keys: readonly string[]): string {
  return prng.weighted<() => string>([
    [6, () => prng.pick(keys)],
    [1, () => ""],
    [1, () => "global_version"],
    [1, () => prng.pick(["x".repeat(600), "x".repeat(601), "é".repeat(600), "😀".repeat(601), "k\u0000", "k\n", "\u009f", "../k", "a/b", " "])],
  ])();
}

function vssVersion(prng: Prng): bigint {
  return prng.pick([-2n, -1n, 0n, 1n, 2n, 5n, INT64_MAX, INT64_MIN, INT64_MAX - 1n, BigInt(prng.int(-1000, 1000))]);
}

function vssItem(prng: Prng, keys: readonly string[], maxValueBytes: number): Init {
  return { key: vssKey(prng, keys), version: vssVersion(prng), value: prng.weighted<Uint8Array>([[5, prng.bytes(prng.int(0, 16))], [1, new Uint8Array(maxValueBytes + 1)]]) };
}

function vssPageToken(prng: Prng, realToken: string): string {
  const json = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  return prng.pick(["", realToken, prng.string(prng.int(1, 80), "ABCDEFabcdef0123456789-_"), json({ v: 1, t: "x", p: "y" }), json({ v: 1, t: realToken, p: "zzz" }), json({ v: 2 }), json(null), "%%%", "x".repeat(20_000)]);
}

/** A structured VSS request for `operation`. */
export function vssStructured(operation: keyof VssSchemas, prng: Prng, keys: readonly string[], realToken: string, maxValueBytes: number): Init {
  switch (operation) {
    case "getObject":
      return { storeId: vssStoreId(prng), key: vssKey(prng, keys) };
    case "putObjects": {
      const count = prng.weighted([[1, 0], [6, prng.int(1, 4)], [1, 1001]]);
      const items = Array.from({ length: count }, () => vssItem(prng, keys, maxValueBytes));
      const deletes = Array.from({ length: prng.int(0, 3) }, () => vssItem(prng, keys, maxValueBytes));
      if (prng.chance(0.15) && items.length > 0) deletes.push({ ...items[0]! });
      return { storeId: vssStoreId(prng), transactionItems: items, deleteItems: deletes, ...(prng.chance(0.4) && { globalVersion: vssVersion(prng) }) };
    }
    case "deleteObject":
      return { storeId: vssStoreId(prng), ...(prng.chance(0.85) && { keyValue: vssItem(prng, keys, maxValueBytes) }) };
    case "listKeyVersions":
      return {
        storeId: vssStoreId(prng),
        ...(prng.chance(0.5) && { keyPrefix: prng.pick(["", "k", "x".repeat(700), "\u0000", "global_version", "é"]) }),
        ...(prng.chance(0.6) && { pageSize: prng.pick([-1, 0, 1, 2, 100, 101, 2 ** 31 - 1, -(2 ** 31)]) }),
        ...(prng.chance(0.5) && { pageToken: vssPageToken(prng, realToken) }),
      };
  }
}

/** A valid VSS request, to mutate. */
function vssValid(operation: keyof VssSchemas, prng: Prng, keys: readonly string[], realToken: string): Init {
  switch (operation) {
    case "getObject":
      return { storeId: "wallet", key: prng.pick(keys) };
    case "putObjects":
      return { storeId: "wallet", globalVersion: 3n, transactionItems: [{ key: prng.pick(keys), version: 1n, value: prng.bytes(4) }], deleteItems: [{ key: "gone", version: 2n }] };
    case "deleteObject":
      return { storeId: "wallet", keyValue: { key: prng.pick(keys), version: 1n } };
    case "listKeyVersions":
      return { storeId: "wallet", keyPrefix: "k", pageSize: 2, pageToken: realToken };
  }
}

export const VSS_OPERATIONS: readonly (keyof VssSchemas)[] = ["getObject", "putObjects", "deleteObject", "listKeyVersions"];

/** One HTTP request to a VSS endpoint. */
export function vssRequest(operation: keyof VssSchemas, schemas: VssSchemas, prng: Prng, keys: readonly string[], realToken: string, maxValueBytes: number): HttpRequest {
  const schema = schemas[operation];
  const path = `/${operation}`;
  const headers = { "content-type": "application/octet-stream" };
  return prng.weighted<() => HttpRequest>([
    [2, () => ({ kind: "random bytes", method: "POST", path, headers, body: prng.bytes(prng.weighted([[5, prng.int(0, 64)], [2, prng.int(65, 2048)]])) })],
    [4, () => {
      const mutator = prng.pick(Object.keys(MUTATORS));
      return { kind: mutator, method: "POST", path, headers, body: MUTATORS[mutator]!(encode(schema, vssValid(operation, prng, keys, realToken)), schema, prng) };
    }],
    [4, () => ({ kind: "structured", method: "POST", path, headers, body: encode(schema, vssStructured(operation, prng, keys, realToken, maxValueBytes)) })],
    [1, () => ({ kind: "wrong content type", method: "POST", path, headers: { "content-type": prng.pick(["application/json", "text/plain", "application/x-protobuf"]) }, body: prng.chance(0.5) ? Buffer.from("{}") : encode(schema, vssValid(operation, prng, keys, realToken)) })],
    [1, () => ({ kind: "wrong HTTP method", method: prng.pick(["GET", "PUT", "DELETE", "PATCH"]), path, headers, ...(prng.chance(0.5) && { body: Buffer.alloc(0) }) })],
    [1, () => ({ kind: "wrong path", method: "POST", path: prng.pick([`${path}/x`, `${path}?a=1`, "/nope", "/", `/${operation.toUpperCase()}`, `${path}%00`, "/../vss/getObject", "/getObject#x"]), headers, body: encode(schema, vssValid(operation, prng, keys, realToken)) })],
  ])();
}

/**
 * A VSS request a caller with the `write` role must see refused: a body that does not decode, a
 * wrong method or path, or a structured request with an aspect that is invalid on its own.
 */
export function vssInvalidRequest(operation: keyof VssSchemas, schemas: VssSchemas, prng: Prng, keys: readonly string[], realToken: string, maxValueBytes: number): HttpRequest {
  const schema = schemas[operation];
  const path = `/${operation}`;
  const headers = { "content-type": "application/octet-stream" };
  const undecodableBody = (): Buffer => {
    for (;;) {
      const body = prng.chance(0.3) ? prng.bytes(prng.int(1, 128)) : MUTATORS[prng.pick(Object.keys(MUTATORS))]!(encode(schema, vssValid(operation, prng, keys, realToken)), schema, prng);
      try {
        fromBinary(schema, body);
      } catch {
        return body;
      }
    }
  };
  const badKey = (): string => prng.pick(["", "x".repeat(601), "k\u0000", "k\n", "\u009f", "😀".repeat(601)]);
  const badStore = (): string => prng.pick(["x".repeat(121), "a\u0001b", "\u0085", "x".repeat(5000)]);
  const structuredInvalid = (): Init => {
    switch (operation) {
      case "getObject":
        return prng.chance(0.5) ? { storeId: badStore(), key: "k1" } : { storeId: "wallet", key: badKey() };
      case "putObjects":
        return prng.pick<() => Init>([
          () => ({ storeId: badStore(), transactionItems: [{ key: "fresh", version: 0n, value: prng.bytes(2) }] }),
          () => ({ storeId: "wallet", transactionItems: [{ key: badKey(), version: prng.pick([0n, -1n]), value: prng.bytes(2) }] }),
          () => ({ storeId: "wallet", transactionItems: [{ key: "fresh", version: prng.pick([-2n, INT64_MIN]), value: prng.bytes(2) }] }),
          () => ({ storeId: "wallet", transactionItems: [{ key: "fresh", version: -1n, value: new Uint8Array(maxValueBytes + 1) }] }),
          // A key may repeat (vss-server applies items in order), but a later item must match what
          // the earlier ones leave: these never do, so 409 and nothing applied.
          () => ({ storeId: "wallet", transactionItems: [{ key: "dup", version: 0n }, { key: "dup", version: 0n }] }),
          () => ({ storeId: "wallet", transactionItems: [{ key: "k1", version: -1n }], deleteItems: [{ key: "k1", version: 5n }] }),
          () => ({ storeId: "wallet", transactionItems: Array.from({ length: 1001 }, (_, i) => ({ key: `many${i}`, version: -1n })) }),
          () => ({ storeId: "wallet", deleteItems: [{ key: badKey(), version: -1n }] }),
          () => ({ storeId: "wallet", globalVersion: prng.pick([-2n, INT64_MIN]), transactionItems: [{ key: "fresh", version: -1n }] }),
          // A delete of version 0 never matches: 409, nothing applied.
          () => ({ storeId: "wallet", transactionItems: [{ key: "fresh", version: -1n }], deleteItems: [{ key: "k2", version: 0n }] }),
        ])();
      case "deleteObject":
        return prng.pick<() => Init>([
          () => ({ storeId: "wallet" }),
          () => ({ storeId: badStore(), keyValue: { key: "k1", version: -1n } }),
          () => ({ storeId: "wallet", keyValue: { key: badKey(), version: -1n } }),
          () => ({ storeId: "wallet", keyValue: { key: "k1", version: prng.pick([-2n, INT64_MIN]) } }),
        ])();
      case "listKeyVersions":
        return prng.pick<() => Init>([
          () => ({ storeId: badStore() }),
          () => ({ storeId: "wallet", pageSize: prng.pick([-1, -(2 ** 31)]) }),
          () => ({ storeId: "wallet", pageToken: prng.pick([prng.string(prng.int(1, 40), "ABCDEFabcdef0123456789-_"), Buffer.from(JSON.stringify({ v: 1, t: realToken, p: "other-prefix" })).toString("base64url")]), keyPrefix: "zz" }),
        ])();
    }
  };
  return prng.weighted<() => HttpRequest>([
    [4, () => ({ kind: "undecodable body", method: "POST", path, headers, body: undecodableBody() })],
    [4, () => ({ kind: "structured (invalid)", method: "POST", path, headers, body: encode(schema, structuredInvalid()) })],
    [1, () => ({ kind: "wrong HTTP method", method: prng.pick(["GET", "PUT", "DELETE"]), path, headers })],
    [1, () => ({ kind: "wrong path", method: "POST", path: prng.pick([`${path}/x`, "/nope", `/${operation.toUpperCase()}`]), headers, body: encode(schema, vssValid(operation, prng, keys, realToken)) })],
  ])();
}
