//! A real VSS HTTP listener on 127.0.0.1 (port 0) over a tiered store, and a small client that
//! speaks the protocol with `fetch` and the generated messages, checking the protocol-version
//! header on every response.

import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { expect } from "vitest";
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
  type KeyValue,
  type ListKeyVersionsResponse,
} from "../../gen/vss/v1/vss_pb.js";
import type { Authenticate } from "../../src/auth/authenticator.js";
import { DEFAULT_LIMITS, type Limits } from "../../src/limits.js";
import { silentLogger } from "../../src/log.js";
import { MemoryStore } from "../../src/store/memory.js";
import type { KVStore } from "../../src/store/types.js";
import { TierStore } from "../../src/tier/tier-store.js";
import { startVssServer, type RunningVssServer } from "../../src/vss/http-server.js";
import { PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER } from "../../src/vss/protocol.js";
import { signatureDigest } from "../../src/auth/signature-auth.js";

export interface VssHarness {
  /** `http://127.0.0.1:PORT/vss`, as LDK Node's base URL. */
  readonly url: string;
  readonly server: RunningVssServer;
  readonly tiers: TierStore;
  readonly primary: KVStore;
  readonly backup: KVStore | undefined;
  /** Closes the listener and the tiered store (and with it the tiers). */
  close(): Promise<void>;
}

export interface VssHarnessOptions {
  readonly primary?: KVStore;
  readonly backup?: KVStore;
  readonly authenticate?: Authenticate;
  readonly limits?: Partial<Limits>;
  readonly maxBodyBytes?: number;
}

export async function startVssHarness(options: VssHarnessOptions = {}): Promise<VssHarness> {
  const primary = options.primary ?? new MemoryStore();
  const tiers = new TierStore({ primary, ...(options.backup !== undefined && { backup: options.backup }), logger: silentLogger() });
  const server = await startVssServer({
    listen: "127.0.0.1:0",
    store: tiers,
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    logger: silentLogger(),
    ...(options.authenticate !== undefined && { authenticate: options.authenticate }),
    ...(options.maxBodyBytes !== undefined && { maxBodyBytes: options.maxBodyBytes }),
  });
  return {
    url: `http://127.0.0.1:${server.port}/vss`,
    server,
    tiers,
    primary,
    backup: options.backup,
    async close() {
      await server.close(1_000);
      await tiers.close();
    },
  };
}

/** A refused request: the HTTP status and the decoded ErrorResponse. */
export class VssCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    /** ErrorResponse.message as the server sent it. */
    readonly serverMessage: string,
  ) {
    super(`HTTP ${status} ${ErrorCode[code]}: ${serverMessage}`);
  }
}

/** Sends a raw body; asserts the protocol-version header whatever the status. */
export async function rawPost(url: string, body: Uint8Array, headers: Record<string, string> = {}, method = "POST"): Promise<Response> {
  const response = await fetch(url, {
    method,
    headers: { "content-type": "application/octet-stream", ...headers },
    ...(method === "GET" || method === "HEAD" ? {} : { body }),
  });
  expect(response.headers.get(PROTOCOL_VERSION_HEADER)).toBe(PROTOCOL_VERSION);
  return response;
}

/** Decodes an error reply (it must be an encoded ErrorResponse). */
export async function errorOf(response: Response): Promise<VssCallError> {
  const error = fromBinary(ErrorResponseSchema, new Uint8Array(await response.arrayBuffer()));
  return new VssCallError(response.status, error.errorCode, error.message);
}

/** Expects `promise` to fail with this status and code. */
export async function refused(promise: Promise<unknown>, status: number, code: ErrorCode): Promise<VssCallError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(VssCallError);
  const failure = error as VssCallError;
  expect({ status: failure.status, code: ErrorCode[failure.code] }).toEqual({ status, code: ErrorCode[code] });
  return failure;
}

export type Item = readonly [key: string, value: string | Uint8Array, version: bigint | number];

const bytes = (value: string | Uint8Array): Uint8Array => (typeof value === "string" ? new TextEncoder().encode(value) : value);

/** One user's view of one VSS store id, as LDK Node's client makes its calls. */
export class VssTestClient {
  constructor(
    readonly url: string,
    readonly storeId: string,
    private readonly headers: () => Record<string, string> = () => ({}),
  ) {}

  private async call<I extends DescMessage, O extends DescMessage>(path: string, input: I, output: O, message: MessageInitShape<I>): Promise<MessageShape<O>> {
    const response = await rawPost(`${this.url}/${path}`, toBinary(input, create(input, message)), this.headers());
    if (response.status !== 200) throw await errorOf(response);
    return fromBinary(output, new Uint8Array(await response.arrayBuffer()));
  }

  async put(items: readonly Item[], globalVersion?: bigint | number, deletes: readonly (readonly [string, bigint | number])[] = []): Promise<void> {
    await this.call("putObjects", PutObjectRequestSchema, PutObjectResponseSchema, {
      storeId: this.storeId,
      ...(globalVersion !== undefined && { globalVersion: BigInt(globalVersion) }),
      transactionItems: items.map(([key, value, version]) => ({ key, value: bytes(value), version: BigInt(version) })),
      deleteItems: deletes.map(([key, version]) => ({ key, version: BigInt(version) })),
    });
  }

  async get(key: string): Promise<KeyValue> {
    const response = await this.call("getObject", GetObjectRequestSchema, GetObjectResponseSchema, { storeId: this.storeId, key });
    expect(response.value).toBeDefined();
    return response.value!;
  }

  async delete(key: string, version: bigint | number): Promise<void> {
    await this.call("deleteObject", DeleteObjectRequestSchema, DeleteObjectResponseSchema, {
      storeId: this.storeId,
      keyValue: { key, version: BigInt(version) },
    });
  }

  async list(options: { prefix?: string; pageSize?: number; pageToken?: string } = {}): Promise<ListKeyVersionsResponse> {
    return this.call("listKeyVersions", ListKeyVersionsRequestSchema, ListKeyVersionsResponseSchema, {
      storeId: this.storeId,
      ...(options.prefix !== undefined && { keyPrefix: options.prefix }),
      ...(options.pageSize !== undefined && { pageSize: options.pageSize }),
      ...(options.pageToken !== undefined && { pageToken: options.pageToken }),
    });
  }

  /** Pages as LDK Node does: from no token until the server answers "" (asserted present on every page). */
  async listAll(options: { prefix?: string; pageSize?: number } = {}): Promise<{ pages: ListKeyVersionsResponse[]; keys: KeyValue[] }> {
    const pages: ListKeyVersionsResponse[] = [];
    let pageToken: string | undefined;
    do {
      const page = await this.list({ ...options, ...(pageToken !== undefined && { pageToken }) });
      expect(page.nextPageToken).toBeDefined();
      pages.push(page);
      pageToken = page.nextPageToken;
      expect(pages.length).toBeLessThan(100_000);
    } while (pageToken !== "");
    return { pages, keys: pages.flatMap((page) => page.keyVersions) };
  }
}

export const text = (value: Uint8Array): string => new TextDecoder().decode(value);

const hex = (data: Uint8Array): string => Buffer.from(data).toString("hex");

/** LDK Node's signature header for `secretKey`, made with @noble/curves. */
export function signatureHeader(secretKey: Uint8Array, time: number = Math.floor(Date.now() / 1000)): string {
  const publicKey = secp256k1.getPublicKey(secretKey, true);
  const timeText = String(time);
  const signature = secp256k1.sign(signatureDigest(publicKey, timeText), secretKey, { prehash: false }).toBytes("compact");
  return `${hex(publicKey)}${hex(signature)}${timeText}`;
}
