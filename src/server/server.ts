//! The gRPC server: KVStoreService, health and reflection on one port, and graceful shutdown.

import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { AdminService } from "../../gen/tierkv/v1/admin_pb.js";
import { KVStoreService } from "../../gen/tierkv/v1/kvstore_pb.js";
import { parseHostPort } from "../host-port.js";
import {
  CONNECTION_AGE_GRACE_MS,
  messageLimitBytes,
  SERVER_KEEPALIVE_TIME_MS,
  SERVER_KEEPALIVE_TIMEOUT_MS,
  SHUTDOWN_GRACE_MS,
  type Limits,
} from "../limits.js";
import type { Logger } from "../log.js";
import type { Authenticate } from "../auth/authenticator.js";
import { grpcServiceDefinition, grpcSurface } from "../rpc/service-definition.js";
import type { CallObserver } from "../service/call.js";
import { callObserver } from "../service/observe.js";
import type { KVStore } from "../store/types.js";
import type { ChangeFeed } from "../watch/change-feed.js";
import type { FollowerStatus } from "../follow/follower.js";
import { adminService, type AdminOperations } from "./admin-service.js";
import { kvStoreService } from "./kvstore-service.js";
import { addReflection } from "./reflection.js";

export interface ServerOptions {
  /** `host:port`; port 0 picks a free one. */
  readonly listen: string;
  readonly store: KVStore;
  /** Serves AdminService (resync, backup status) when given: the tiered store. */
  readonly admin?: AdminOperations;
  /** With `--follow`: its status joins BackupStatus. */
  readonly follower?: { status(): FollowerStatus };
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
  /** Serves Watch from the primary's change log; without it Watch answers FAILED_PRECONDITION. */
  readonly feed?: ChangeFeed;
  /** Server streams whose peer takes nothing for this long are ended (default: the limits module's). */
  readonly streamMaxStallMs?: number;
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
    "grpc.keepalive_time_ms": SERVER_KEEPALIVE_TIME_MS,
    "grpc.keepalive_timeout_ms": SERVER_KEEPALIVE_TIMEOUT_MS,
    ...(options.maxConnectionAgeMs ? { "grpc.max_connection_age_ms": options.maxConnectionAgeMs, "grpc.max_connection_age_grace_ms": CONNECTION_AGE_GRACE_MS } : {}),
  };
}

/** The observer of every call: the debug line, internal failures' causes, then `observeCall`. */
export { callObserver } from "../service/observe.js";

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { logger } = options;
  // Calls are admitted from their metadata by the surface's interceptor, before their message is read.
  const surface = grpcSurface(callObserver(logger, options.observeCall), options.authenticate, options.streamMaxStallMs);
  const server = new grpc.Server({ ...channelOptions(options), interceptors: [surface.interceptor] });
  server.addService(grpcServiceDefinition(KVStoreService, options.limits), surface.handlers(KVStoreService, kvStoreService(options.store, options.limits, options.feed)));
  if (options.admin !== undefined) {
    server.addService(grpcServiceDefinition(AdminService, options.limits), surface.handlers(AdminService, adminService(options.admin, options.follower)));
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
  const address = `${parseHostPort(options.listen, "--listen").host}:${port}`;

  const shutdown = (graceMs = SHUTDOWN_GRACE_MS): Promise<void> => {
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
