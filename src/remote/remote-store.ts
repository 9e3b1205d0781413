//! The remote backend: another tierkv (any `KVStoreService`) reached through `TierkvClient`, so
//! instances chain as backup tiers: `grpc://host:port`, `grpcs://host:port?ca=…&cert=…&key=…`.
//!
//! It does not retry by itself: the tier wrapper's retries (exponential backoff, bounded by the
//! caller's deadline) do, so retries never nest. Retrying a mutation is safe because its version
//! travels with it: the remote acknowledges a repeat it already applied as stale.
//!
//! Mutations issued in the same turn of the event loop travel together in one `Mutate` call (as
//! group commit does for fsyncs): a gRPC call costs far more CPU than the mutation it carries, and
//! the remote then commits the whole batch at once. Each mutation still resolves or fails alone.
//! Batches stay within what the remote accepts: `max_batch_bytes`/`max_batch_items` in the URI
//! (defaults below), and a batch the remote refuses as a whole is split in two and sent again.

import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { TierkvClient, type ClientMutation, type MutationResult } from "../client/client.js";
import {
  PER_MUTATION_OVERHEAD_BYTES,
  REMOTE_DEFAULT_BATCH_BYTES,
  REMOTE_DEFAULT_BATCH_ITEMS,
  REMOTE_KEEPALIVE_TIME_MS,
  REMOTE_KEEPALIVE_TIMEOUT_MS,
  REMOTE_RECONNECT_BACKOFF_MS,
} from "../limits.js";
import { invalidArgument, StoreError } from "../store/errors.js";
import { redactStoreUri } from "../store/redact.js";
import { uriQuery } from "../uri-query.js";
import type {
  AllKeysPage,
  AllKeysRequest,
  CallOptions,
  KVStore,
  KeyRef,
  ListOptions,
  MutationOptions,
  MutationOutcome,
  NamespaceRef,
  Page,
  PageRequest,
  RemoveOptions,
  TxnRequest,
  TxnResult,
  VersionedValue,
} from "../store/types.js";
import { validateKey } from "../store/validate.js";

/** Query parameters a remote store URI accepts. */
const PARAMETERS = ["ca", "cert", "key", "token_file", "timeout_ms", "max_batch_bytes", "max_batch_items"] as const;

/** Keepalive and reconnection suited to a long-lived link between two servers. */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // Pings only while calls are in flight, so an idle link never trips the server's ping policy,
  // and a dead peer fails in-flight calls within ~40 s even without a deadline.
  "grpc.keepalive_time_ms": REMOTE_KEEPALIVE_TIME_MS,
  "grpc.keepalive_timeout_ms": REMOTE_KEEPALIVE_TIMEOUT_MS,
  // A restarted peer is found again within seconds (the default backoff grows to 2 minutes).
  "grpc.initial_reconnect_backoff_ms": REMOTE_RECONNECT_BACKOFF_MS.initial,
  "grpc.max_reconnect_backoff_ms": REMOTE_RECONNECT_BACKOFF_MS.max,
};

export interface BatchLimits {
  /** Most value bytes (plus per-mutation overhead) one `Mutate` call carries. */
  readonly maxBatchBytes: number;
  /** Most mutations one `Mutate` call carries. */
  readonly maxBatchItems: number;
}

/** What a default tierkv accepts, minus nothing: a batch of this size is never refused by one. */
export const DEFAULT_BATCH_LIMITS: BatchLimits = {
  maxBatchBytes: REMOTE_DEFAULT_BATCH_BYTES,
  maxBatchItems: REMOTE_DEFAULT_BATCH_ITEMS,
};

interface QueuedMutation {
  readonly mutation: ClientMutation;
  readonly bytes: number;
  readonly deadline: number | undefined;
  readonly resolve: (outcome: MutationOutcome) => void;
  readonly reject: (error: unknown) => void;
}

/** Batch-level refusals: the remote would not take the call as a whole (size or item count). */
/**
 * A mutation's version and version report as the remote sees them: a plain mutation travels
 * without a version (the remote orders it after whatever the key holds, with its own clock).
 */
function ordering(options: MutationOptions): Pick<ClientMutation, "version" | "onVersion"> {
  return {
    ...(!options.plain && options.version !== undefined && { version: options.version }),
    ...(options.onVersion !== undefined && { onVersion: options.onVersion }),
  };
}

function refusedAsWhole(error: unknown): boolean {
  return error instanceof StoreError && (error.code === "resource-exhausted" || error.code === "invalid-argument");
}

/** A remote tierkv as a `KVStore`: reads pass through, writes and removes travel in batches. */
export class RemoteStore implements KVStore {
  private queue: QueuedMutation[] = [];
  private queuedBytes = 0;
  private flushScheduled = false;
  private closed = false;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    readonly client: TierkvClient,
    private readonly limits: BatchLimits = DEFAULT_BATCH_LIMITS,
    /** Where the bearer token came from (`token_file=`), so `reloadToken` can read it again. */
    private readonly tokenFile?: string,
  ) {}

  /**
   * Reads `token_file=` again and sends its token from the next call on (SIGHUP: a rotated
   * replicate credential). A file that cannot be read, or is empty, keeps the current token and
   * throws saying why. Returns whether there was a token file to read.
   */
  reloadToken(): boolean {
    if (this.tokenFile === undefined) return false;
    this.client.setBearerToken(readTokenFile(this.tokenFile, this.client.address));
    return true;
  }

  read(ref: KeyRef, options?: CallOptions): Promise<Uint8Array> {
    return this.client.read(ref, options);
  }

  readVersioned(ref: KeyRef, options?: CallOptions): Promise<VersionedValue> {
    return this.client.readVersioned(ref, options);
  }

  list(ns: NamespaceRef, options?: ListOptions): Promise<string[]> {
    return this.client.list(ns, options);
  }

  listPage(ns: NamespaceRef, page?: PageRequest): Promise<Page> {
    return this.client.listPage(ns, page);
  }

  listAllKeys(request?: AllKeysRequest): Promise<AllKeysPage> {
    return this.client.listAllKeys(request);
  }

  /** Unknown over the wire: a tiered store with a remote primary seeds its clock from the wall clock. */
  async highestVersion(): Promise<bigint> {
    return 0n;
  }

  /** One call, so the remote applies the batch atomically as this instance did. */
  txn(request: TxnRequest): Promise<TxnResult> {
    return this.client.txn(request);
  }

  write(ref: KeyRef, value: Uint8Array, options: MutationOptions = {}): Promise<MutationOutcome> {
    return this.enqueue(
      { ref, ...ordering(options), write: value, revision: options.revision, exact: options.exact },
      options.deadline,
      value.byteLength,
    );
  }

  remove(ref: KeyRef, options: RemoveOptions = {}): Promise<MutationOutcome> {
    return this.enqueue({ ref, ...ordering(options), remove: { lazy: options.lazy } }, options.deadline, 0);
  }

  private enqueue(mutation: ClientMutation, deadline: number | undefined, valueBytes: number): Promise<MutationOutcome> {
    // Checked before joining a batch, so one bad key never fails its neighbours.
    try {
      validateKey(mutation.ref, "write" in mutation ? "write" : "remove");
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.closed) return Promise.reject(new StoreError("unavailable", "the remote store is closed"));
    const bytes = valueBytes + PER_MUTATION_OVERHEAD_BYTES;
    return new Promise((resolve, reject) => {
      // The size check comes first: a mutation that would overflow the batch starts the next one.
      if (this.queue.length > 0 && this.queuedBytes + bytes > this.limits.maxBatchBytes) this.flush();
      this.queue.push({ mutation, bytes, deadline, resolve, reject });
      this.queuedBytes += bytes;
      if (this.queue.length >= this.limits.maxBatchItems) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    if (batch.length === 0) return;
    const sending = this.send(batch);
    this.inFlight.add(sending);
    void sending.finally(() => this.inFlight.delete(sending));
  }

  /** Sends one batch; a batch refused as a whole is split in halves, down to single mutations. */
  private async send(batch: QueuedMutation[]): Promise<void> {
    // The call may run only until the earliest of its members' deadlines; without any, the
    // client's default timeout.
    const deadlines = batch.flatMap((queued) => (queued.deadline === undefined ? [] : [queued.deadline]));
    const deadline = deadlines.length === 0 ? undefined : Math.min(...deadlines);
    let results: MutationResult[];
    try {
      results = await this.client.mutate(
        batch.map((queued) => queued.mutation),
        { deadline },
      );
    } catch (error) {
      if (batch.length > 1 && refusedAsWhole(error)) {
        const half = Math.ceil(batch.length / 2);
        await Promise.all([this.send(batch.slice(0, half)), this.send(batch.slice(half))]);
      } else {
        for (const queued of batch) queued.reject(error);
      }
      return;
    }
    batch.forEach((queued, i) => {
      const result = results[i]!;
      if (result instanceof StoreError) queued.reject(result);
      else queued.resolve(result);
    });
  }

  /** Sends what is queued, waits for every batch in flight to settle, then closes the channel. */
  async close(): Promise<void> {
    this.closed = true;
    this.flush();
    await Promise.allSettled([...this.inFlight]);
    await this.client.close();
  }
}

function readParameterFile(uri: URL, name: string): Buffer | undefined {
  const path = uriQuery(uri).get(name);
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (error) {
    throw invalidArgument(`store URI ${uri.protocol}//${uri.host}: cannot read ${name} file ${path}: ${(error as Error).message}`);
  }
}

/** The bearer token in `path`, trimmed; never empty. */
function readTokenFile(path: string, address: string): string {
  let token: string;
  try {
    token = readFileSync(path, "utf8").trim();
  } catch (error) {
    throw invalidArgument(`token_file ${path} (for ${address}): cannot read it: ${(error as Error).message}`);
  }
  if (token === "") throw invalidArgument(`token_file ${path} (for ${address}) is empty`);
  return token;
}

function positiveParameter(uri: URL, text: string, name: string): number | undefined {
  const value = uriQuery(uri).get(name);
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]{0,14}$/.test(value)) throw invalidArgument(`store URI "${redactStoreUri(text)}": ${name} must be a positive whole number`);
  return Number(value);
}

/**
 * Checks a `grpc://` / `grpcs://` URI without reading the files it names (`--print-config` runs
 * this too): its shape, its parameters and which of them go together.
 */
export function checkRemoteUri(text: string): URL {
  let uri: URL;
  try {
    uri = new URL(text);
  } catch {
    throw invalidArgument(`store URI "${redactStoreUri(text)}": not a valid URI; expected grpc://host:port or grpcs://host:port?…`);
  }
  if (uri.port === "" || uri.pathname.replace(/^\/$/, "") !== "") {
    throw invalidArgument(`store URI "${redactStoreUri(text)}": expected ${uri.protocol}//host:port`);
  }
  let query: Map<string, string>;
  try {
    query = uriQuery(uri);
  } catch (error) {
    throw invalidArgument(`store URI "${redactStoreUri(text)}": ${(error as Error).message}`);
  }
  for (const name of query.keys()) {
    if (!(PARAMETERS as readonly string[]).includes(name)) {
      throw invalidArgument(`store URI "${redactStoreUri(text)}": unknown parameter "${name}"; known: ${PARAMETERS.join(", ")}`);
    }
  }
  const has = (name: string): boolean => query.has(name);
  if (uri.protocol !== "grpcs:" && (has("ca") || has("cert") || has("key"))) throw invalidArgument(`store URI "${text}": ca/cert/key need grpcs://`);
  if (has("cert") !== has("key")) throw invalidArgument(`store URI "${text}": cert and key go together`);
  for (const name of ["timeout_ms", "max_batch_bytes", "max_batch_items"]) positiveParameter(uri, text, name);
  return uri;
}

/** Opens a client for `grpc://host:port` or `grpcs://host:port?…` (see README, "Store URIs"). */
export function openRemoteStore(text: string): RemoteStore {
  const uri = checkRemoteUri(text);
  const tls = uri.protocol === "grpcs:";
  const [ca, cert, key] = [readParameterFile(uri, "ca"), readParameterFile(uri, "cert"), readParameterFile(uri, "key")];
  const tokenFile = uriQuery(uri).get("token_file");
  const token = tokenFile === undefined ? undefined : readTokenFile(tokenFile, uri.host);
  const timeoutMs = positiveParameter(uri, text, "timeout_ms");
  const client = new TierkvClient({
    address: uri.host,
    credentials: tls ? grpc.credentials.createSsl(ca ?? null, key ?? null, cert ?? null) : grpc.credentials.createInsecure(),
    ...(token !== undefined && { bearerToken: token }),
    ...(timeoutMs !== undefined && { timeoutMs }),
    channelOptions: CHANNEL_OPTIONS,
  });
  const limits = {
    maxBatchBytes: positiveParameter(uri, text, "max_batch_bytes") ?? DEFAULT_BATCH_LIMITS.maxBatchBytes,
    maxBatchItems: positiveParameter(uri, text, "max_batch_items") ?? DEFAULT_BATCH_LIMITS.maxBatchItems,
  };
  return new RemoteStore(client, limits, tokenFile);
}
