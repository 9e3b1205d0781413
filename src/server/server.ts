//! The gRPC server: KVStoreService, health and reflection on one port, and graceful shutdown.

import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { AdminService } from "../../gen/tierkv/v1/admin_pb.js";
import { KVStoreService } from "../../gen/tierkv/v1/kvstore_pb.js";
import { messageLimitBytes, type Limits } from "../limits.js";
import type { Logger } from "../log.js";
import type { Authenticate } from "../auth/authenticator.js";
import { grpcHandlers, grpcServiceDefinition, type CallObserver } from "../rpc/service-definition.js";
import type { KVStore } from "../store/types.js";
import { adminService, type AdminOperations } from "./admin-service.js";
import { kvStoreService } from "./kvstore-service.js";
import { addReflection } from "./reflection.js";

export interface ServerOptions {
  /** `host:port`; port 0 picks a free one. */
  readonly listen: string;
  readonly store: KVStore;
  /** Serves AdminService (resync, backup status) when given: the tiered store. */
  readonly admin?: AdminOperations;
  /** Request limits (value size, batch size, List size, streams per connection). */
  readonly limits: Limits;
  /** Largest message received or sent, in bytes; by default derived from `limits`. */
  readonly messageLimitBytes?: number;
  readonly logger: Logger;
  /** Close connections after this long (plus a 30 s grace), so load balancers can rebalance; 0 or absent: never. */
  readonly maxConnectionAgeMs?: number;
  /** Who calls; open mode (every caller may do everything in store `default`) when absent. */
  readonly authenticate?: Authenticate;
  readonly credentials?: grpc.ServerCredentials;
  /** Told of every finished call (metrics). */
  readonly observeCall?: CallObserver;
  /** Whether KVStoreService can serve (the tiered store's breakers); SERVING when absent. */
  readonly health?: { readonly serving: boolean; onHealthChange(listener: (serving: boolean) => void): void };
}

export interface RunningServer {
  /** `host:port` actually bound. */
  readonly address: string;
  readonly port: number;
  /**
   * Stops accepting calls, lets in-flight calls finish (up to `graceMs`, then cancels them) and
   * resolves when the server is down. Does not close the store: its owner does.
   */
  shutdown(graceMs?: number): Promise<void>;
}

/** The status name health reports for the store service (the empty name means "the server"). */
const SERVICE_NAMES = ["", KVStoreService.typeName];

function hostOf(listen: string): string {
  const colon = listen.lastIndexOf(":");
  if (colon < 0) throw new Error(`--listen "${listen}" must be host:port`);
  return listen.slice(0, colon);
}

const KEEPALIVE_TIME_MS = 60_000;
const KEEPALIVE_TIMEOUT_MS = 20_000;
/** How long calls on a connection past its maximum age get to finish. */
const CONNECTION_AGE_GRACE_MS = 30_000;

/** Both limits travel as 32-bit fields: a gRPC message's length prefix, SETTINGS_MAX_CONCURRENT_STREAMS. */
const UINT32_MAX = 2 ** 32 - 1;

/** Rejects a setting that is not an integer in [1, max], by name: grpc-js would fail obscurely. */
function checkCount(name: string, value: number | undefined, max: number): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new Error(`${name} must be an integer from 1 to ${max}, not ${value}`);
  }
}

/** grpc-js's options for the message and stream limits. */
function channelOptions(options: ServerOptions): grpc.ChannelOptions {
  checkCount("messageLimitBytes", options.messageLimitBytes, UINT32_MAX);
  checkCount("maxConcurrentStreams", options.limits.maxConcurrentStreams, UINT32_MAX);
  const messageLimit = options.messageLimitBytes ?? messageLimitBytes(options.limits);
  return {
    "grpc.max_receive_message_length": messageLimit,
    "grpc.max_send_message_length": messageLimit,
    "grpc.max_concurrent_streams": options.limits.maxConcurrentStreams,
    // Pings idle connections so a vanished client is noticed and its resources freed.
    "grpc.keepalive_time_ms": KEEPALIVE_TIME_MS,
    "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
    ...(options.maxConnectionAgeMs ? { "grpc.max_connection_age_ms": options.maxConnectionAgeMs, "grpc.max_connection_age_grace_ms": CONNECTION_AGE_GRACE_MS } : {}),
  };
}

/**
 * The observer of every call of the server: logs failures (internal ones at error, with their
 * cause; the caller's at debug), then tells `observeCall`.
 */
export function callObserver(logger: Logger, observeCall?: CallObserver): CallObserver {
  return {
    started: observeCall?.started?.bind(observeCall),
    ended(rpc, error, seconds, outcome, subject) {
      const method = rpc.name;
      if (error?.code === "internal" && outcome !== "cancelled") logger.error({ err: error.cause ?? error, method, ...subject?.() }, "request failed");
      // One debug line per call: store, method, key path and outcome; never values or tokens.
      // The error's text is `error`: a second `msg` key would hide it from JSON readers.
      else if (logger.isLevelEnabled("debug")) {
        const ms = Math.round(seconds * 1e4) / 10;
        logger.debug({ method, ...subject?.(), outcome, ...(error !== undefined && { code: error.code, error: error.message }), ms }, "request");
      }
      observeCall?.ended(rpc, error, seconds, outcome, subject);
    },
  };
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { logger } = options;
  const server = new grpc.Server(channelOptions(options));
  const observe = callObserver(logger, options.observeCall);
  const service = kvStoreService(options.store, options.limits);
  server.addService(grpcServiceDefinition(KVStoreService), grpcHandlers(KVStoreService, service, observe, options.authenticate));
  if (options.admin !== undefined) {
    const admin = adminService(options.admin);
    server.addService(grpcServiceDefinition(AdminService), grpcHandlers(AdminService, admin, observe, options.authenticate));
  }
  let stopping: Promise<void> | undefined;
  const health = new HealthImplementation(Object.fromEntries(SERVICE_NAMES.map((name) => [name, "SERVING"])));
  health.addToServer(server);
  const storeStatus = (serving: boolean): void => {
    if (stopping === undefined) health.setStatus(KVStoreService.typeName, serving ? "SERVING" : "NOT_SERVING");
  };
  storeStatus(options.health?.serving ?? true);
  options.health?.onHealthChange(storeStatus);
  addReflection(server);

  const credentials = options.credentials ?? grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(options.listen, credentials, (error, boundPort) => (error ? reject(error) : resolve(boundPort)));
  });
  const address = `${hostOf(options.listen)}:${port}`;

  const shutdown = (graceMs = 30_000): Promise<void> => {
    stopping ??= new Promise<void>((resolve) => {
      for (const name of SERVICE_NAMES) health.setStatus(name, "NOT_SERVING");
      const force = setTimeout(() => {
        logger.warn({ graceMs }, "in-flight calls did not finish in time; cancelling them");
        server.forceShutdown();
        resolve();
      }, graceMs);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    return stopping;
  };
  return { address, port, shutdown };
}
