//! The remote backend: another tierkv (any `KVStoreService`) reached with the generated client,
//! so instances chain as backup tiers: `grpc://host:port`, `grpcs://host:port?ca=…&cert=…&key=…`.
//!
//! It does not retry by itself: the tier wrapper's retries (exponential backoff, bounded by the
//! caller's deadline) do, so retries never nest. Retrying a mutation is safe because its version
//! travels with it: the remote acknowledges a repeat it already applied as stale.
//!
//! Mutations issued in the same turn of the event loop travel together in one `Mutate` call (as
//! group commit does for fsyncs): a gRPC call costs far more CPU than the mutation it carries, and
//! the remote then commits the whole batch at once. Each mutation still resolves or fails alone.

import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { TierkvClient, type ClientMutation } from "../client/client.js";
import { invalidArgument } from "./errors.js";
import type { KeyRef, MutationOptions, RemoveOptions } from "./types.js";

/** Query parameters a remote store URI accepts. */
const PARAMETERS = ["ca", "cert", "key", "token_file", "timeout_ms"] as const;

/** Keepalive and reconnection suited to a long-lived link between two servers. */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // Pings only while calls are in flight, so an idle link never trips the server's ping policy,
  // and a dead peer fails in-flight calls within ~40 s even without a deadline.
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  // A restarted peer is found again within seconds (the default backoff grows to 2 minutes).
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 2_000,
};

function readParameterFile(uri: URL, name: string): Buffer | undefined {
  const path = uri.searchParams.get(name);
  if (path === null) return undefined;
  try {
    return readFileSync(path);
  } catch (error) {
    throw invalidArgument(`store URI ${uri.protocol}//${uri.host}: cannot read ${name} file ${path}: ${(error as Error).message}`);
  }
}

/** A batch is sent once it holds this many mutations or bytes of values, or at the end of the turn. */
const MAX_BATCH_MUTATIONS = 256;
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

interface QueuedMutation {
  readonly mutation: ClientMutation;
  readonly deadline: number | undefined;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** A `TierkvClient` whose writes and removes are batched into `Mutate` calls. */
export class RemoteStore extends TierkvClient {
  private queue: QueuedMutation[] = [];
  private queuedBytes = 0;
  private flushScheduled = false;

  override write(ref: KeyRef, value: Uint8Array, options: MutationOptions = {}): Promise<void> {
    return this.enqueue({ ref, version: options.version, write: value }, options.deadline, value.byteLength);
  }

  override remove(ref: KeyRef, options: RemoveOptions = {}): Promise<void> {
    return this.enqueue({ ref, version: options.version, remove: { lazy: options.lazy } }, options.deadline, 0);
  }

  private enqueue(mutation: ClientMutation, deadline: number | undefined, bytes: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ mutation, deadline, resolve, reject });
      this.queuedBytes += bytes;
      if (this.queue.length >= MAX_BATCH_MUTATIONS || this.queuedBytes >= MAX_BATCH_BYTES) this.flush();
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
    // The batch may run until the latest of its deadlines; without one, the client's default.
    const deadlines = batch.map((queued) => queued.deadline);
    const deadline = deadlines.includes(undefined) ? undefined : Math.max(...(deadlines as number[]));
    this.mutate(
      batch.map((queued) => queued.mutation),
      { deadline },
    ).then(
      (errors) => batch.forEach((queued, i) => (errors[i] ? queued.reject(errors[i]) : queued.resolve())),
      (error: unknown) => batch.forEach((queued) => queued.reject(error)),
    );
  }
}

/** Opens a client for `grpc://host:port` or `grpcs://host:port?…` (see README, "Store URIs"). */
export function openRemoteStore(text: string): RemoteStore {
  const uri = new URL(text);
  if (uri.port === "" || uri.pathname.replace(/^\/$/, "") !== "") {
    throw invalidArgument(`store URI "${text}": expected ${uri.protocol}//host:port`);
  }
  for (const name of uri.searchParams.keys()) {
    if (!(PARAMETERS as readonly string[]).includes(name)) {
      throw invalidArgument(`store URI "${text}": unknown parameter "${name}"; known: ${PARAMETERS.join(", ")}`);
    }
  }
  const tls = uri.protocol === "grpcs:";
  const [ca, cert, key] = [readParameterFile(uri, "ca"), readParameterFile(uri, "cert"), readParameterFile(uri, "key")];
  if (!tls && (ca || cert || key)) throw invalidArgument(`store URI "${text}": ca/cert/key need grpcs://`);
  if ((cert === undefined) !== (key === undefined)) throw invalidArgument(`store URI "${text}": cert and key go together`);
  const token = readParameterFile(uri, "token_file")?.toString("utf8").trim();
  const timeout = uri.searchParams.get("timeout_ms");
  if (timeout !== null && !/^[1-9][0-9]*$/.test(timeout)) {
    throw invalidArgument(`store URI "${text}": timeout_ms must be a positive whole number`);
  }
  return new RemoteStore({
    address: uri.host,
    credentials: tls ? grpc.credentials.createSsl(ca ?? null, key ?? null, cert ?? null) : grpc.credentials.createInsecure(),
    ...(token !== undefined && { bearerToken: token }),
    ...(timeout !== null && { timeoutMs: Number(timeout) }),
    channelOptions: CHANNEL_OPTIONS,
  });
}
