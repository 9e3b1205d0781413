//! One interface over the stores under test: tierkv (and both do-nothing ceilings, which speak the
//! same KVStoreService) through the TypeScript client, tierkv's HTTP listener (VSS, and
//! KVStoreService over Connect), etcd through its own gRPC KV API, and PostgreSQL through bare `pg`
//! queries.

import { Agent, request as httpRequest } from "node:http";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import pg from "pg";
import { ReadRequestSchema, ReadResponseSchema, WriteRequestSchema } from "../gen/tierkv/v1/kvstore_pb.js";
import { TierkvClient } from "../src/client/client.js";
import { StoreError } from "../src/store/errors.js";
import type { KeyRef } from "../src/store/types.js";
import { BARE_TABLE } from "./postgres.js";
import { bytesField, scan, varintField } from "./wire.js";

/** A key in the benchmark's model: namespace pair plus key, mapped per store. */
export type BenchKey = KeyRef;

export interface Driver {
  write(key: BenchKey, value: Uint8Array): Promise<void>;
  read(key: BenchKey): Promise<void>;
  /** Walks every key of a namespace pair, a page of 1,000 at a time; resolves with the count. */
  listAll(namespace: { primaryNamespace: string; secondaryNamespace: string }): Promise<number>;
  /** The key's revision (the store's own per-key change counter), 0n when absent. */
  revision(key: BenchKey): Promise<bigint>;
  /**
   * Writes `value` if the key's revision is still `expected` (0n: absent), in one conditional
   * call (tierkv: Txn; VSS: a versioned putObjects; etcd: Txn on mod_revision; PostgreSQL: a
   * conditional UPDATE or INSERT). Resolves with the new revision; rejects when the check failed.
   */
  compareAndWrite(key: BenchKey, expected: bigint, value: Uint8Array): Promise<bigint>;
  close(): void;
}

export type DriverKind = "tierkv" | "etcd" | "vss" | "connect" | "pg";

export interface DriverOptions {
  /** Concurrent callers this driver serves (the pg driver opens that many connections). */
  readonly connections?: number;
}

const DEADLINE_MS = 30_000;

class TierkvDriver implements Driver {
  private readonly client: TierkvClient;
  constructor(address: string) {
    this.client = new TierkvClient({ address, timeoutMs: DEADLINE_MS });
  }
  async write(key: BenchKey, value: Uint8Array): Promise<void> {
    await this.client.write(key, value);
  }
  async read(key: BenchKey): Promise<void> {
    await this.client.read(key);
  }
  async listAll(namespace: { primaryNamespace: string; secondaryNamespace: string }): Promise<number> {
    let count = 0;
    for await (const _ of this.client.keys(namespace, { pageSize: 1000 })) count++;
    return count;
  }
  async revision(key: BenchKey): Promise<bigint> {
    try {
      return (await this.client.readVersioned(key)).revision;
    } catch (error) {
      if (error instanceof StoreError && error.code === "not-found") return 0n;
      throw error;
    }
  }
  async compareAndWrite(key: BenchKey, expected: bigint, value: Uint8Array): Promise<bigint> {
    const result = await this.client.txn({
      checks: [{ ...key, expect: expected === 0n ? "absent" : expected }],
      operations: [{ ...key, kind: "write", value }],
    });
    if (!result.succeeded) throw new Error(`txn: the revision of ${key.key} is no longer ${expected}`);
    return result.revisions[0]!;
  }
  close(): void {
    void this.client.close();
  }
}

type Unary<Req, Res> = (request: Req, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: Res) => void) => void;
interface EtcdKeyValue {
  key: Buffer;
  modRevision: string;
}
interface EtcdTxnRequest {
  compare: Array<{ result: number; target: number; key: Buffer; modRevision: number | string }>;
  success: Array<{ requestPut: { key: Buffer; value: Uint8Array } }>;
}
interface EtcdKvClient extends grpc.Client {
  put: Unary<{ key: Buffer; value: Uint8Array }, unknown>;
  range: Unary<{ key: Buffer; rangeEnd?: Buffer; limit?: number; keysOnly?: boolean }, { kvs: EtcdKeyValue[]; more: boolean }>;
  txn: Unary<EtcdTxnRequest, { header: { revision: string }; succeeded: boolean }>;
}

const etcdProto = fileURLToPath(new URL("../../bench/proto/etcd_kv.proto", import.meta.url));
let EtcdKv: (new (address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions) => EtcdKvClient) | undefined;

function etcdKey(key: BenchKey): Buffer {
  return Buffer.from(`${key.primaryNamespace}/${key.secondaryNamespace}/${key.key}`);
}

function call<Req, Res>(method: Unary<Req, Res>, client: EtcdKvClient, request: Req): Promise<Res> {
  return new Promise((resolve, reject) =>
    method.call(client, request, { deadline: Date.now() + DEADLINE_MS }, (error, response) =>
      error ? reject(error) : resolve(response as Res),
    ),
  );
}

class EtcdDriver implements Driver {
  private readonly client: EtcdKvClient;
  constructor(address: string) {
    EtcdKv ??= (
      grpc.loadPackageDefinition(loadSync(etcdProto, { keepCase: false, longs: String, arrays: true })) as unknown as {
        etcdserverpb: { KV: typeof EtcdKv };
      }
    ).etcdserverpb.KV;
    this.client = new EtcdKv!(address, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": 64 * 1024 * 1024,
      "grpc.max_send_message_length": 64 * 1024 * 1024,
    });
  }
  async write(key: BenchKey, value: Uint8Array): Promise<void> {
    await call(this.client.put, this.client, { key: etcdKey(key), value });
  }
  async read(key: BenchKey): Promise<void> {
    const response = await call(this.client.range, this.client, { key: etcdKey(key) });
    if (response.kvs.length !== 1) throw new Error(`etcd: ${etcdKey(key).toString()} not found`);
  }
  async listAll(namespace: { primaryNamespace: string; secondaryNamespace: string }): Promise<number> {
    const prefix = Buffer.from(`${namespace.primaryNamespace}/${namespace.secondaryNamespace}/`);
    const rangeEnd = Buffer.from(prefix);
    rangeEnd[rangeEnd.length - 1]! += 1; // the prefix's successor: every key starting with it
    let count = 0;
    let from = prefix;
    for (;;) {
      const page = await call(this.client.range, this.client, { key: from, rangeEnd, limit: 1000, keysOnly: true });
      count += page.kvs.length;
      if (!page.more || page.kvs.length === 0) return count;
      from = Buffer.concat([page.kvs.at(-1)!.key, Buffer.from([0])]);
    }
  }
  async revision(key: BenchKey): Promise<bigint> {
    const response = await call(this.client.range, this.client, { key: etcdKey(key), keysOnly: true });
    return response.kvs.length === 0 ? 0n : BigInt(response.kvs[0]!.modRevision);
  }
  async compareAndWrite(key: BenchKey, expected: bigint, value: Uint8Array): Promise<bigint> {
    // CompareResult EQUAL = 0, CompareTarget MOD = 2: the key's mod_revision (0 when absent).
    const response = await call(this.client.txn, this.client, {
      compare: [{ result: 0, target: 2, key: etcdKey(key), modRevision: expected.toString() }],
      success: [{ requestPut: { key: etcdKey(key), value } }],
    });
    if (!response.succeeded) throw new Error(`etcd txn: the mod_revision of ${key.key} is no longer ${expected}`);
    return BigInt(response.header.revision);
  }
  close(): void {
    this.client.close();
  }
}

/** POSTs bodies to one HTTP/1.1 listener over keep-alive connections (as LDK Node's reqwest client). */
class HttpPoster {
  private readonly agent: Agent;
  private readonly host: string;
  private readonly port: number;
  constructor(address: string, options: DriverOptions) {
    const colon = address.lastIndexOf(":");
    this.host = address.slice(0, colon);
    this.port = Number(address.slice(colon + 1));
    this.agent = new Agent({ keepAlive: true, maxSockets: Math.max(1, options.connections ?? 1) });
  }
  /** POSTs `body` to `path`: resolves with the status and the response body. */
  post(path: string, headers: Record<string, string>, body: Uint8Array): Promise<{ status: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: this.host, port: this.port, method: "POST", path, agent: this.agent, headers: { ...headers, "content-length": body.byteLength }, timeout: DEADLINE_MS },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.once("end", () => resolve({ status: res.statusCode ?? 0, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) }));
          res.once("error", reject);
        },
      );
      req.once("error", reject);
      req.once("timeout", () => req.destroy(new Error(`POST ${path}: no answer in ${DEADLINE_MS} ms`)));
      req.end(body);
    });
  }
  close(): void {
    this.agent.destroy();
  }
}

/**
 * LDK Node's VssStore over HTTP/1.1 with keep-alive (as its reqwest client): protobuf bodies,
 * encoded by hand (bench/wire.ts). A BenchKey becomes the VSS key `primary/secondary/key` of the
 * VSS store "bench". Write is an unconditional put (version -1); compareAndWrite a versioned put.
 */
class VssDriver implements Driver {
  private readonly http: HttpPoster;
  private static readonly STORE = bytesField(1, "bench");
  constructor(address: string, options: DriverOptions) {
    this.http = new HttpPoster(address, options);
  }
  private static keyOf(key: BenchKey): string {
    return `${key.primaryNamespace}/${key.secondaryNamespace}/${key.key}`;
  }
  private post(operation: string, body: Buffer): Promise<{ status: number; body: Buffer }> {
    return this.http.post(`/vss/${operation}`, { "content-type": "application/octet-stream" }, body);
  }
  private static failure(operation: string, response: { status: number; body: Buffer }): Error {
    let message = "";
    try {
      message = scan(response.body).find((f) => f.field === 2)?.bytes?.toString() ?? "";
    } catch {
      // not an ErrorResponse
    }
    return new Error(`VSS ${operation}: HTTP ${response.status} ${message}`);
  }
  private async put(key: BenchKey, version: bigint, value: Uint8Array): Promise<{ status: number; body: Buffer }> {
    const item = Buffer.concat([bytesField(1, VssDriver.keyOf(key)), varintField(2, version), bytesField(3, value)]);
    return this.post("putObjects", Buffer.concat([VssDriver.STORE, bytesField(3, item)]));
  }
  /** getObject: the stored KeyValue's fields, or undefined when the key is absent (404). */
  private async get(key: BenchKey): Promise<{ version: bigint; value: Buffer } | undefined> {
    const response = await this.post("getObject", Buffer.concat([VssDriver.STORE, bytesField(2, VssDriver.keyOf(key))]));
    if (response.status === 404) return undefined;
    if (response.status !== 200) throw VssDriver.failure("getObject", response);
    const keyValue = scan(response.body).find((f) => f.field === 2)?.bytes ?? Buffer.alloc(0);
    const fields = scan(keyValue);
    return { version: fields.find((f) => f.field === 2)?.value ?? 0n, value: fields.find((f) => f.field === 3)?.bytes ?? Buffer.alloc(0) };
  }
  async write(key: BenchKey, value: Uint8Array): Promise<void> {
    const response = await this.put(key, -1n, value);
    if (response.status !== 200) throw VssDriver.failure("putObjects", response);
  }
  async read(key: BenchKey): Promise<void> {
    if ((await this.get(key)) === undefined) throw new Error(`VSS getObject: ${VssDriver.keyOf(key)} not found`);
  }
  async listAll(): Promise<number> {
    throw new Error("the VSS driver does not list");
  }
  async revision(key: BenchKey): Promise<bigint> {
    return (await this.get(key))?.version ?? 0n;
  }
  async compareAndWrite(key: BenchKey, expected: bigint, value: Uint8Array): Promise<bigint> {
    const response = await this.put(key, expected, value);
    if (response.status !== 200) throw VssDriver.failure("putObjects", response);
    return expected + 1n;
  }
  close(): void {
    this.http.close();
  }
}

/**
 * KVStoreService over the Connect protocol (unary, binary protobuf bodies, HTTP/1.1 keep-alive) on
 * tierkv's HTTP listener: what a browser or `curl` client costs the server, beside gRPC's figures.
 */
class ConnectDriver implements Driver {
  private readonly http: HttpPoster;
  private static readonly HEADERS = { "content-type": "application/proto", "connect-protocol-version": "1" };
  constructor(address: string, options: DriverOptions) {
    this.http = new HttpPoster(address, options);
  }
  private async call(method: string, body: Uint8Array): Promise<{ status: number; body: Buffer }> {
    const response = await this.http.post(`/tierkv.v1.KVStoreService/${method}`, ConnectDriver.HEADERS, body);
    // Connect answers an error as JSON {code, message} with an HTTP status other than 200.
    if (response.status !== 200 && !(method === "Read" && response.status === 404)) {
      throw new Error(`Connect ${method}: HTTP ${response.status} ${response.body.toString().slice(0, 200)}`);
    }
    return response;
  }
  async write(key: BenchKey, value: Uint8Array): Promise<void> {
    await this.call("Write", toBinary(WriteRequestSchema, create(WriteRequestSchema, { ...key, value })));
  }
  async read(key: BenchKey): Promise<void> {
    if ((await this.call("Read", toBinary(ReadRequestSchema, create(ReadRequestSchema, key)))).status === 404) {
      throw new Error(`Connect Read: ${key.key} not found`);
    }
  }
  async listAll(): Promise<number> {
    throw new Error("the Connect driver does not list");
  }
  async revision(key: BenchKey): Promise<bigint> {
    const response = await this.call("Read", toBinary(ReadRequestSchema, create(ReadRequestSchema, key)));
    return response.status === 404 ? 0n : fromBinary(ReadResponseSchema, response.body).revision;
  }
  async compareAndWrite(): Promise<bigint> {
    throw new Error("the Connect driver runs no Txn workload");
  }
  close(): void {
    this.http.close();
  }
}

const PK = "store_id = 'default' AND primary_namespace = $1 AND secondary_namespace = $2 AND key = $3";
/** Named (prepared once per connection), like tierkv's own statements. */
const BARE = {
  upsert: {
    name: "bench_upsert",
    text: `INSERT INTO ${BARE_TABLE} AS kv (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
           VALUES ('default', $1, $2, $3, $4, $5, 1)
           ON CONFLICT (store_id, primary_namespace, secondary_namespace, key) DO UPDATE
             SET value = excluded.value, version = excluded.version, revision = kv.revision + 1`,
  },
  read: { name: "bench_read", text: `SELECT value, version, revision FROM ${BARE_TABLE} WHERE ${PK}` },
  revision: { name: "bench_revision", text: `SELECT revision FROM ${BARE_TABLE} WHERE ${PK}` },
  create: {
    name: "bench_create",
    text: `INSERT INTO ${BARE_TABLE} (store_id, primary_namespace, secondary_namespace, key, value, version, revision)
           VALUES ('default', $1, $2, $3, $4, 0, 1) ON CONFLICT DO NOTHING RETURNING revision`,
  },
  update: {
    name: "bench_update",
    text: `UPDATE ${BARE_TABLE} SET value = $4, revision = revision + 1 WHERE ${PK} AND revision = $5 RETURNING revision`,
  },
  page: {
    name: "bench_page",
    text: `SELECT key, seq FROM ${BARE_TABLE} WHERE store_id = 'default' AND primary_namespace = $1 AND secondary_namespace = $2
           AND seq < $3 ORDER BY seq DESC LIMIT 1000`,
  },
} as const;

/**
 * PostgreSQL's own ceiling: the same upsert tierkv's backend makes, one autocommitted statement
 * per operation over a pool with one connection per concurrent caller, no tierkv in between.
 */
class PgDriver implements Driver {
  private readonly pool: pg.Pool;
  private version = BigInt(Date.now()) * 1000n;
  constructor(uri: string, options: DriverOptions) {
    this.pool = new pg.Pool({ connectionString: uri, max: Math.max(1, options.connections ?? 1) });
    this.pool.on("error", () => undefined);
  }
  async write(key: BenchKey, value: Uint8Array): Promise<void> {
    await this.pool.query({ ...BARE.upsert, values: [key.primaryNamespace, key.secondaryNamespace, key.key, value, String(++this.version)] });
  }
  async read(key: BenchKey): Promise<void> {
    const result = await this.pool.query({ ...BARE.read, values: [key.primaryNamespace, key.secondaryNamespace, key.key] });
    if (result.rowCount !== 1) throw new Error(`pg: ${key.key} not found`);
  }
  async listAll(namespace: { primaryNamespace: string; secondaryNamespace: string }): Promise<number> {
    let count = 0;
    let before = "9223372036854775807";
    for (;;) {
      const page = await this.pool.query<{ key: string; seq: string }>({ ...BARE.page, values: [namespace.primaryNamespace, namespace.secondaryNamespace, before] });
      count += page.rows.length;
      if (page.rows.length < 1000) return count;
      before = page.rows.at(-1)!.seq;
    }
  }
  async revision(key: BenchKey): Promise<bigint> {
    const result = await this.pool.query<{ revision: string }>({ ...BARE.revision, values: [key.primaryNamespace, key.secondaryNamespace, key.key] });
    return result.rows.length === 0 ? 0n : BigInt(result.rows[0]!.revision);
  }
  async compareAndWrite(key: BenchKey, expected: bigint, value: Uint8Array): Promise<bigint> {
    const ref = [key.primaryNamespace, key.secondaryNamespace, key.key, value];
    const result =
      expected === 0n
        ? await this.pool.query<{ revision: string }>({ ...BARE.create, values: ref })
        : await this.pool.query<{ revision: string }>({ ...BARE.update, values: [...ref, String(expected)] });
    if (result.rows.length !== 1) throw new Error(`pg: the revision of ${key.key} is no longer ${expected}`);
    return BigInt(result.rows[0]!.revision);
  }
  close(): void {
    void this.pool.end().catch(() => undefined);
  }
}

export function openDriver(kind: DriverKind, address: string, options: DriverOptions = {}): Driver {
  switch (kind) {
    case "etcd":
      return new EtcdDriver(address);
    case "vss":
      return new VssDriver(address, options);
    case "connect":
      return new ConnectDriver(address, options);
    case "pg":
      return new PgDriver(address, options);
    case "tierkv":
      return new TierkvDriver(address);
  }
}
