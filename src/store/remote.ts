//! The remote backend: another tierkv (any `KVStoreService`) reached with the generated client,
//! so instances chain as backup tiers: `grpc://host:port`, `grpcs://host:port?ca=…&cert=…&key=…`.
//!
//! It does not retry by itself: the tier wrapper's retries (exponential backoff, bounded by the
//! caller's deadline) do, so retries never nest. Retrying a mutation is safe because its version
//! travels with it: the remote acknowledges a repeat it already applied as stale.

import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { TierkvClient } from "../client/client.js";
import { invalidArgument } from "./errors.js";

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

/** Opens a client for `grpc://host:port` or `grpcs://host:port?…` (see README, "Store URIs"). */
export function openRemoteStore(text: string): TierkvClient {
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
  return new TierkvClient({
    address: uri.host,
    credentials: tls ? grpc.credentials.createSsl(ca ?? null, key ?? null, cert ?? null) : grpc.credentials.createInsecure(),
    ...(token !== undefined && { bearerToken: token }),
    ...(timeout !== null && { timeoutMs: Number(timeout) }),
    channelOptions: CHANNEL_OPTIONS,
  });
}
