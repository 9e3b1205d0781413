//! The TypeScript client: a promise API over the generated KVStoreService, itself a `KVStore`.

import * as grpc from "@grpc/grpc-js";
import { create, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { ChangeType, KVStoreService, type WatchResponse } from "../../gen/tierkv/v1/kvstore_pb.js";
import { grpcClientConstructor } from "../rpc/service-definition.js";
import { fromGrpcError, fromStatus } from "../rpc/status.js";
import { withTraceContext } from "../rpc/tracing.js";
import { StoreError } from "../store/errors.js";
import { effectivePageSize, messageLimitBytes, DEFAULT_CALL_TIMEOUT_MS, DEFAULT_LIMITS } from "../limits.js";
import {
  VersionedReads,
  type AllKeysPage,
  type AllKeysRequest,
  type CallOptions,
  type KVStore,
  type KeyRef,
  type ListOptions,
  type MutationOptions,
  type MutationOutcome,
  type NamespaceRef,
  type Page,
  type PageRequest,
  type RemoveOptions,
  type TxnRequest,
  type TxnResult,
  type VersionedValue,
} from "../store/types.js";
import { validateKey, validateNamespace, validateTxn } from "../store/validate.js";
import type { WatchEvent } from "../watch/change-feed.js";

export interface ClientOptions {
  /** The server, as `host:port`. */
  readonly address: string;
  /** Channel credentials; insecure (plaintext) when omitted. */
  readonly credentials?: grpc.ChannelCredentials;
  /** Deadline of a call that sets none itself, in ms. Default 30 s. */
  readonly timeoutMs?: number;
  /** Sent as `authorization: Bearer <token>` with every call. */
  readonly bearerToken?: string;
  /** Largest message sent or received. Default 64 MiB plus room for names. */
  readonly maxMessageBytes?: number;
  /** Extra grpc-js channel options (keepalive, ...). */
  readonly channelOptions?: grpc.ChannelOptions;
}

/** The channel and metadata every tierkv client (store or admin) builds from `ClientOptions`. */
export function openChannel(
  constructor: grpc.ServiceClientConstructor,
  options: ClientOptions,
): { raw: grpc.Client; metadata: grpc.Metadata } {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const raw = new constructor(options.address, options.credentials ?? grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_send_message_length": maxMessageBytes,
    ...options.channelOptions,
  });
  const metadata = new grpc.Metadata();
  if (options.bearerToken !== undefined) metadata.set("authorization", `Bearer ${options.bearerToken}`);
  return { raw, metadata };
}

/**
 * One mutation of a `mutate` batch. Without a version it is ordered after whatever the key holds
 * (always applied); `onVersion` learns the version the server applied it at.
 */
export type ClientMutation = { readonly ref: KeyRef; readonly version?: bigint; readonly onVersion?: (version: bigint) => void } & (
  | { readonly write: Uint8Array; readonly revision?: bigint; readonly exact?: boolean }
  | { readonly remove: { readonly lazy?: boolean } }
);

/**
 * The version a mutation carries over the wire: none (0) for a plain one, whose proposal only
 * this process's clock made; the server orders it after whatever the key holds.
 */
function wireVersion(options: { readonly version?: bigint; readonly plain?: boolean }): bigint | undefined {
  return options.plain ? undefined : options.version;
}

/** What one mutation of a `mutate` batch did: its outcome, or the error it failed with. */
export type MutationResult = MutationOutcome | StoreError;

/** What `TierkvClient.watch` follows (WatchRequest's fields). */
export interface WatchOptions {
  readonly storeId?: string;
  readonly primaryNamespace?: string;
  readonly secondaryNamespace?: string;
  /** The first sequence to deliver; 0n or absent: from now. */
  readonly start?: bigint;
  readonly values?: boolean;
  readonly allStores?: boolean;
  readonly starts?: ReadonlyMap<string, bigint>;
}


type Methods = (typeof KVStoreService)["method"];
type Request<K extends keyof Methods> = MessageInitShape<Methods[K]["input"]>;
type Response<K extends keyof Methods> = MessageShape<Methods[K]["output"]>;
type RawUnary = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

const KVStoreClientClass = grpcClientConstructor(KVStoreService);
export const DEFAULT_TIMEOUT_MS = DEFAULT_CALL_TIMEOUT_MS;
const DEFAULT_MAX_MESSAGE_BYTES = messageLimitBytes(DEFAULT_LIMITS);

/**
 * A client of a tierkv server. It implements `KVStore`, so anything that takes a store (the
 * conformance suite, a tier) takes a remote server too.
 *
 * ```ts
 * const kv = new TierkvClient({ address: "127.0.0.1:50051" });
 * await kv.write({ primaryNamespace: "", secondaryNamespace: "", key: "manager" }, bytes);
 * ```
 */
export class TierkvClient extends VersionedReads implements KVStore {
  private readonly raw: grpc.Client;
  private readonly timeoutMs: number;
  private readonly metadata: grpc.Metadata;
  readonly address: string;

  constructor(options: ClientOptions) {
    super();
    this.address = options.address;
    ({ raw: this.raw, metadata: this.metadata } = openChannel(KVStoreClientClass, options));
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Sends `token` as `authorization: Bearer …` from the next call on (a rotated credential). */
  setBearerToken(token: string): void {
    this.metadata.set("authorization", `Bearer ${token}`);
  }

  private call<K extends keyof Methods>(method: K, init: Request<K>, options: CallOptions = {}): Promise<Response<K>> {
    const request = create(KVStoreService.method[method].input, init);
    const deadline = options.deadline ?? Date.now() + this.timeoutMs;
    const unary = (this.raw as unknown as Record<K, RawUnary>)[method].bind(this.raw);
    return new Promise((resolve, reject) => {
      const call = unary(request, withTraceContext(this.metadata), { deadline }, (error, response) => {
        options.signal?.removeEventListener("abort", cancel);
        if (error) reject(fromGrpcError(error, this.address));
        else resolve(response as Response<K>);
      });
      const cancel = (): void => call.cancel();
      options.signal?.addEventListener("abort", cancel, { once: true });
    });
  }

  /** The current value and its version; rejects with a `not-found` StoreError when absent. */
  async readVersioned(ref: KeyRef, options?: CallOptions): Promise<VersionedValue> {
    validateKey(ref, "read");
    const { value, version, revision } = await this.call("read", keyFields(ref), options);
    return { value, version, revision };
  }

  /**
   * Replaces the value; resolves once the server has made it durable in every durable tier, with
   * `stale` when a mutation with a higher version had already been applied (nothing changed).
   * Without `version` (or with `plain`, whose proposal the server replaces with its own) the write
   * is ordered after whatever the key holds and always applies; `onVersion` learns its version.
   */
  async write(ref: KeyRef, value: Uint8Array, options: MutationOptions = {}): Promise<MutationOutcome> {
    validateKey(ref, "write");
    const version = wireVersion(options);
    if (options.revision !== undefined || options.exact) {
      // Mirroring and repair (the replicate role) travel as a one-item Mutate: Write keeps to LDK's shape.
      const [result] = await this.mutate(
        [{ ref, version, write: value, revision: options.revision, exact: options.exact, ...(options.onVersion && { onVersion: options.onVersion }) }],
        options,
      );
      if (result instanceof StoreError) throw result;
      return result!;
    }
    const response = await this.call("write", { ...keyFields(ref), value, version: version ?? 0n }, options);
    if (response.applied) options.onVersion?.(response.version);
    return response.applied ? "applied" : "stale";
  }

  /** Deletes the key (absent keys included); `lazy` lets the server defer it. */
  async remove(ref: KeyRef, options: RemoveOptions = {}): Promise<MutationOutcome> {
    validateKey(ref, "remove");
    const response = await this.call(
      "remove",
      { ...keyFields(ref), lazy: options.lazy ?? false, version: wireVersion(options) ?? 0n },
      options,
    );
    if (response.applied) options.onVersion?.(response.version);
    return response.applied ? "applied" : "stale";
  }

  /**
   * Applies the operations atomically if every check holds. A failed check is not an error: the
   * result says which one failed, and nothing changed.
   */
  async txn(request: TxnRequest): Promise<TxnResult> {
    validateTxn(request);
    const response = await this.call(
      "txn",
      {
        checks: request.checks.map((check) => ({
          ...keyFields(check),
          expect:
            check.expect === "absent"
              ? { case: "absent" as const, value: true }
              : check.expect === "present"
                ? { case: "present" as const, value: true }
                : { case: "revision" as const, value: check.expect },
        })),
        operations: request.operations.map((operation) => ({
          ...keyFields(operation),
          kind:
            operation.kind === "write"
              ? { case: "write" as const, value: { value: operation.value, revision: operation.revision ?? 0n } }
              : { case: "remove" as const, value: { lazy: false } },
          version: operation.version ?? 0n,
        })),
        version: wireVersion(request) ?? 0n,
      },
      request,
    );
    if (!response.succeeded) return { succeeded: false, failedCheck: response.failedCheck };
    return {
      succeeded: true,
      outcomes: response.results.map((result) => (result.applied ? "applied" : "stale")),
      revisions: response.results.map((result) => result.revision),
      versions: response.results.map((result) => result.version),
    };
  }

  /** Unknown over the wire (a store behind a server keeps its own clock). */
  async highestVersion(): Promise<bigint> {
    return 0n;
  }

  /** Every key of the namespace pair, in no particular order. */
  async list(ns: NamespaceRef, options?: ListOptions): Promise<string[]> {
    validateNamespace(ns, "list");
    // The server caps List on its own (--max-list-keys); `limit` is applied here.
    return (await this.call("list", namespaceFields(ns), options)).keys.slice(0, options?.limit);
  }

  /** One page of keys (newest-created first where the server's store can). */
  async listPage(ns: NamespaceRef, page: PageRequest = {}): Promise<Page> {
    validateNamespace(ns, "list");
    const response = await this.call(
      "listPage",
      { ...namespaceFields(ns), pageSize: page.pageSize ?? 0, pageToken: page.pageToken ?? "" },
      page,
    );
    return { keys: response.keys, nextPageToken: response.nextPageToken };
  }

  /**
   * Applies several writes and removes in one call; each behaves as its own `write`/`remove`
   * (not atomic together). Resolves with one entry per mutation: its outcome, or its StoreError.
   * Rejects only when the call as a whole fails.
   */
  async mutate(mutations: readonly ClientMutation[], options: CallOptions = {}): Promise<MutationResult[]> {
    for (const mutation of mutations) validateKey(mutation.ref, "write" in mutation ? "write" : "remove");
    const response = await this.call(
      "mutate",
      {
        mutations: mutations.map((mutation) => ({
          ...keyFields(mutation.ref),
          version: mutation.version ?? 0n,
          kind:
            "write" in mutation
              ? { case: "write" as const, value: { value: mutation.write, revision: mutation.revision ?? 0n, exact: mutation.exact ?? false } }
              : { case: "remove" as const, value: { lazy: mutation.remove.lazy ?? false } },
        })),
      },
      options,
    );
    if (response.results.length !== mutations.length) {
      throw new StoreError("internal", `tierkv at ${this.address} answered ${response.results.length} results for ${mutations.length} mutations`);
    }
    return response.results.map((result, i): MutationResult => {
      if (result.code !== 0) return fromStatus(result.code, result.message);
      if (result.applied) mutations[i]!.onVersion?.(result.version);
      return result.applied ? "applied" : "stale";
    });
  }

  /** One page of keys of every namespace with versions, in (store, primary, secondary, key) order. */
  async listAllKeys(request: AllKeysRequest = {}): Promise<AllKeysPage> {
    const response = await this.call(
      "listAllKeys",
      {
        pageSize: effectivePageSize(request.limit),
        pageToken: request.pageToken ?? "",
        storeId: request.storeId ?? "",
        allStores: request.allStores ?? false,
      },
      request,
    );
    const keys = response.keys.map(({ storeId, primaryNamespace, secondaryNamespace, key, version, revision }) => ({
      storeId,
      primaryNamespace,
      secondaryNamespace,
      key,
      version,
      revision,
    }));
    return { keys, nextPageToken: response.nextPageToken };
  }

  /** Every key of the namespace pair, walking all pages; each page gets its own deadline. */
  async *keys(ns: NamespaceRef, options: { pageSize?: number } = {}): AsyncGenerator<string, void, undefined> {
    let pageToken = "";
    do {
      const page = await this.listPage(ns, { pageSize: options.pageSize, pageToken });
      yield* page.keys;
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }

  /**
   * The store's primary namespaces or, given `primary`, the secondary namespaces under it: each
   * once, in order, the root (empty) namespace left out. There is no RPC for it: this walks
   * `listAllKeys` page by page (memory stays bounded by a page) and stops once past `primary`,
   * so it reads every key of the store up to there. `storeId` names another store (roles
   * `admin`, `replicate`).
   */
  async *namespaces(options: { primary?: string; storeId?: string; pageSize?: number } = {}): AsyncGenerator<string, void, undefined> {
    const { primary, storeId } = options;
    if (primary !== undefined) validateNamespace({ primaryNamespace: primary, secondaryNamespace: "" }, "list");
    let last = "";
    let pageToken = "";
    do {
      const page = await this.listAllKeys({ storeId, pageToken, limit: options.pageSize });
      for (const key of page.keys) {
        if (primary !== undefined && key.primaryNamespace < primary) continue;
        // Keys come ordered by (primary, secondary, key): nothing later belongs to `primary`.
        if (primary !== undefined && key.primaryNamespace > primary) return;
        const name = primary === undefined ? key.primaryNamespace : key.secondaryNamespace;
        if (name !== "" && name !== last) yield (last = name);
      }
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }

  /** Closes the channel. */
  /**
   * Streams a store's changes (contract §9) until `signal` aborts or the server ends the watch
   * (OUT_OF_RANGE, RESOURCE_EXHAUSTED or UNAVAILABLE, each saying where to resume, thrown as a
   * StoreError). No deadline: a watch lasts as long as its caller wants.
   */
  async *watch(request: WatchOptions = {}, signal?: AbortSignal): AsyncGenerator<WatchEvent, void, undefined> {
    const init = create(KVStoreService.method.watch.input, {
      storeId: request.storeId ?? "",
      primaryNamespace: request.primaryNamespace ?? "",
      secondaryNamespace: request.secondaryNamespace ?? "",
      startSequence: request.start ?? 0n,
      values: request.values ?? false,
      allStores: request.allStores ?? false,
      starts: Object.fromEntries(request.starts ?? []),
    });
    const raw = this.raw as unknown as { watch(request: unknown, metadata: grpc.Metadata): grpc.ClientReadableStream<WatchResponse> };
    const stream = raw.watch(init, withTraceContext(this.metadata));
    const cancel = (): void => stream.cancel();
    signal?.addEventListener("abort", cancel, { once: true });
    try {
      for await (const message of stream as AsyncIterable<WatchResponse>) {
        const event = message.event;
        if (event.case === "progress") {
          const { sequence, pending, timeMs, heads } = event.value;
          const withHeads = Object.keys(heads).length > 0 ? { heads: new Map(Object.entries(heads)) } : {};
          yield { kind: "progress", sequence, pending, time: Number(timeMs), ...withHeads };
        } else if (event.case === "change") {
          const change = event.value;
          yield {
            kind: "change",
            change: {
              storeId: change.storeId,
              primaryNamespace: change.primaryNamespace,
              secondaryNamespace: change.secondaryNamespace,
              key: change.key,
              seq: change.sequence,
              kind: change.type === ChangeType.REMOVE ? "remove" : "put",
              version: change.version,
              revision: change.revision,
              size: Number(change.size),
              ...(request.values && change.type !== ChangeType.REMOVE && (change.superseded ? { superseded: true } : { value: change.value })),
              time: Number(change.commitTimeMs),
            },
          };
        }
      }
    } catch (error) {
      if (signal?.aborted) return;
      throw fromGrpcError(error as grpc.ServiceError, this.address);
    } finally {
      signal?.removeEventListener("abort", cancel);
      stream.cancel();
    }
  }

  async close(): Promise<void> {
    this.raw.close();
  }
}

/** The wire's namespace fields; an empty store id means "the caller's own store". */
function namespaceFields(ns: NamespaceRef): Required<NamespaceRef> {
  return { storeId: ns.storeId ?? "", primaryNamespace: ns.primaryNamespace, secondaryNamespace: ns.secondaryNamespace };
}

function keyFields(ref: KeyRef): Required<KeyRef> {
  return { ...namespaceFields(ref), key: ref.key };
}
