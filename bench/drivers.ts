//! One interface over the stores under test: tierkv (and the do-nothing ceiling, which speaks the
//! same KVStoreService) through the TypeScript client, and etcd through its own gRPC KV API.

import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { TierkvClient } from "../src/client/client.js";
import type { KeyRef } from "../src/store/types.js";

/** A key in the benchmark's model: namespace pair plus key, mapped per store. */
export type BenchKey = KeyRef;

export interface Driver {
  write(key: BenchKey, value: Uint8Array): Promise<void>;
  read(key: BenchKey): Promise<void>;
  /** Walks every key of a namespace pair, a page of 1,000 at a time; resolves with the count. */
  listAll(namespace: { primaryNamespace: string; secondaryNamespace: string }): Promise<number>;
  close(): void;
}

export type DriverKind = "tierkv" | "etcd";

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
  close(): void {
    void this.client.close();
  }
}

type Unary<Req, Res> = (request: Req, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: Res) => void) => void;
interface EtcdKvClient extends grpc.Client {
  put: Unary<{ key: Buffer; value: Uint8Array }, unknown>;
  range: Unary<{ key: Buffer; rangeEnd?: Buffer; limit?: number; keysOnly?: boolean }, { kvs: Array<{ key: Buffer }>; more: boolean }>;
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
      grpc.loadPackageDefinition(loadSync(etcdProto, { keepCase: false })) as unknown as {
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
  close(): void {
    this.client.close();
  }
}

export function openDriver(kind: DriverKind, address: string): Driver {
  return kind === "etcd" ? new EtcdDriver(address) : new TierkvDriver(address);
}
