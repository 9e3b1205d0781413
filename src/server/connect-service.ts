//! KVStoreService over the Connect protocol (JSON and binary) and gRPC-Web, for `curl` and
//! browser wallets, with `@connectrpc/connect-node`: the same handlers, authentication, limits
//! and error table as the gRPC port; a thin translation, no storage logic of its own.

import type { IncomingMessage, ServerResponse } from "node:http";
import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError, type ConnectRouter, type HandlerContext as ConnectContext } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { KVStoreService } from "../../gen/tierkv/v1/kvstore_pb.js";
import type { Authenticate } from "../auth/authenticator.js";
import { messageLimitBytes, type Limits } from "../limits.js";
import type { Logger } from "../log.js";
import type { HandlerContext } from "../rpc/service-definition.js";
import { toGrpcStatus } from "../rpc/status.js";
import { StoreError } from "../store/errors.js";
import type { KVStore } from "../store/types.js";
import { kvStoreService } from "./kvstore-service.js";

export interface ConnectServiceOptions {
  readonly store: KVStore;
  readonly limits: Limits;
  readonly authenticate: Authenticate;
  readonly logger: Logger;
  /** Origins browsers may call from (`*` for any); none: no CORS headers. */
  readonly corsOrigins: readonly string[];
}

export type HttpHandler = (request: IncomingMessage, response: ServerResponse, next: () => void) => void;

/** The Connect error for anything a handler threw: the status table of the gRPC port (same codes). */
function toConnectError(error: unknown, logger: Logger, method: string): ConnectError {
  const storeError = StoreError.from(error);
  if (storeError.code === "internal") logger.error({ err: storeError.cause ?? storeError, method }, "request failed");
  const status = toGrpcStatus(storeError);
  // Connect's codes are gRPC's status codes, number for number.
  return new ConnectError(status.details ?? "", (status.code ?? Code.Internal) as number as Code);
}

const CORS_HEADERS = {
  "access-control-allow-methods": "POST, GET, OPTIONS",
  "access-control-allow-headers":
    "content-type, authorization, connect-protocol-version, connect-timeout-ms, grpc-timeout, x-grpc-web, x-user-agent",
  "access-control-expose-headers": "grpc-status, grpc-message, grpc-status-details-bin",
  "access-control-max-age": "7200",
};

/**
 * An HTTP handler serving `/tierkv.v1.KVStoreService/*`; other paths go to `next` (the VSS routes
 * share the listener).
 */
export function connectService(options: ConnectServiceOptions): HttpHandler {
  const { logger } = options;
  const impl = kvStoreService(options.store, options.limits);
  /** Runs one of the gRPC port's handlers for a Connect call: authenticated, deadline and signal passed on. */
  const call = async <Request, Response>(
    method: string,
    request: Request,
    context: ConnectContext,
    handler: (request: Request, context: HandlerContext) => Promise<Response>,
  ): Promise<Response> => {
    try {
      const authorization = context.requestHeader.get("authorization") ?? undefined;
      const principal = await options.authenticate({ ...(authorization !== undefined && { authorization }) });
      const timeout = context.timeoutMs();
      return await handler(request, {
        metadata: new grpc.Metadata(),
        signal: context.signal,
        principal,
        ...(timeout !== undefined && { deadline: Date.now() + timeout }),
      });
    } catch (error) {
      throw toConnectError(error, logger, method);
    }
  };
  const routes = (router: ConnectRouter): void => {
    router.service(KVStoreService, {
      read: (request, context) => call("Read", request, context, impl.read),
      write: (request, context) => call("Write", request, context, impl.write),
      remove: (request, context) => call("Remove", request, context, impl.remove),
      list: (request, context) => call("List", request, context, impl.list),
      listPage: (request, context) => call("ListPage", request, context, impl.listPage),
      listAllKeys: (request, context) => call("ListAllKeys", request, context, impl.listAllKeys),
      mutate: (request, context) => call("Mutate", request, context, impl.mutate),
      txn: (request, context) => call("Txn", request, context, impl.txn),
    });
  };
  const limit = messageLimitBytes(options.limits);
  const adapter = connectNodeAdapter({ routes, readMaxBytes: limit, writeMaxBytes: limit });
  const allowed = new Set(options.corsOrigins);
  return (request, response, next) => {
    const origin = request.headers.origin;
    if (origin !== undefined && (allowed.has("*") || allowed.has(origin))) {
      response.setHeader("access-control-allow-origin", allowed.has("*") ? "*" : origin);
      response.setHeader("vary", "origin");
      for (const [name, value] of Object.entries(CORS_HEADERS)) response.setHeader(name, value);
      if (request.method === "OPTIONS") {
        response.writeHead(204).end();
        return;
      }
    }
    if (!request.url?.startsWith(`/${KVStoreService.typeName}/`)) return next();
    adapter(request, response);
  };
}
