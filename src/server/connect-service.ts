//! KVStoreService over the Connect protocol (JSON and binary) and gRPC-Web, for `curl` and
//! browser wallets, with `@connectrpc/connect-node`: the same handlers, authentication, limits
//! and error table as the gRPC port; a thin translation, no storage logic of its own.

import type { IncomingMessage, ServerResponse } from "node:http";
import * as grpc from "@grpc/grpc-js";
import { fromBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createConnectRouter,
  createContextKey,
  createContextValues,
  type HandlerContext as ConnectContext,
} from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { KVStoreService } from "../../gen/tierkv/v1/kvstore_pb.js";
import type { Authenticate } from "../auth/authenticator.js";
import { messageLimitBytes, type Limits } from "../limits.js";
import type { Logger } from "../log.js";
import type { HandlerContext } from "../rpc/service-definition.js";
import { toGrpcStatus } from "../rpc/status.js";
import type { Principal } from "../auth/principal.js";
import { invalidArgument, StoreError } from "../store/errors.js";
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
/**
 * What the HTTP layer settled before connect-es parses the body: the caller, or why the call is
 * refused. connect-es parses a binary body before any handler runs and answers one that does not
 * decode INTERNAL; the gRPC port checks credentials first and answers INVALID_ARGUMENT. So the
 * body is read and checked here, and a refused call reaches connect-es with an empty message and
 * its reason, which the handler throws: connect-es then answers it in the caller's protocol.
 */
const ADMISSION = createContextKey<{ principal?: Principal; refusal?: StoreError }>({}, { description: "tierkv admission" });

/** Connect's unary binary and gRPC-Web's (binary) content types; JSON is decoded by connect-es. */
const CONNECT_BINARY = /^application\/proto(;|$)/i;
const GRPC_WEB_BINARY = /^application\/grpc-web(\+proto)?(;|$)/i;

/** The request body, at most `limit` bytes; undefined past it (connect-es then refuses the size). */
async function readBody(body: AsyncIterable<Uint8Array>, limit: number): Promise<Buffer | undefined> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/**
 * The message bytes of a body, by protocol: the body itself (Connect), or the data of the first
 * gRPC-Web envelope; undefined when it is compressed (connect-es decompresses and checks it).
 */
function messageBytes(contentType: string, body: Buffer): Uint8Array | undefined {
  if (CONNECT_BINARY.test(contentType)) return body;
  if (body.byteLength < 5 || (body[0]! & 0b1) !== 0) return undefined;
  return body.subarray(5, 5 + body.readUInt32BE(1));
}

/** An empty message in the body's framing: what a refused call carries on to connect-es. */
function emptyBody(contentType: string): Uint8Array {
  return CONNECT_BINARY.test(contentType) ? new Uint8Array(0) : new Uint8Array(5);
}

export function connectService(options: ConnectServiceOptions): HttpHandler {
  const { logger } = options;
  const impl = kvStoreService(options.store, options.limits);
  /** Runs one of the gRPC port's handlers for a Connect call: admitted, deadline and signal passed on. */
  const call = async <Request, Response>(
    method: string,
    request: Request,
    context: ConnectContext,
    handler: (request: Request, context: HandlerContext) => Promise<Response>,
  ): Promise<Response> => {
    try {
      const admission = context.values.get(ADMISSION);
      if (admission.refusal !== undefined) throw admission.refusal;
      const authorization = context.requestHeader.get("authorization") ?? undefined;
      const principal = admission.principal ?? (await options.authenticate({ ...(authorization !== undefined && { authorization }) }));
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
  const limit = messageLimitBytes(options.limits);
  const router = createConnectRouter({ readMaxBytes: limit, writeMaxBytes: limit, acceptCompression: [compressionGzip, compressionBrotli] });
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
  const handlers = new Map(router.handlers.map((handler) => [handler.requestPath, handler]));

  /** Authenticates, checks a binary body decodes, then lets connect-es answer in the caller's protocol. */
  const answer = async (handler: UniversalHandler, request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const contentType = request.headers["content-type"] ?? "";
    const admission: { principal?: Principal; refusal?: StoreError } = {};
    const universal = universalRequestFromNodeRequest(request, response, undefined, createContextValues().set(ADMISSION, admission));
    let body = universal.body;
    try {
      admission.principal = await options.authenticate({ ...(request.headers.authorization !== undefined && { authorization: request.headers.authorization }) });
    } catch (error) {
      admission.refusal = StoreError.from(error);
    }
    if (CONNECT_BINARY.test(contentType) || GRPC_WEB_BINARY.test(contentType)) {
      const bytes = await readBody(universal.body as AsyncIterable<Uint8Array>, limit + 5);
      const message = bytes === undefined ? undefined : messageBytes(contentType, bytes);
      if (admission.refusal === undefined && message !== undefined) {
        try {
          fromBinary(handler.method.input, message);
        } catch (error) {
          admission.refusal = invalidArgument(`request is not a valid ${handler.method.input.typeName} message: ${(error as Error).message}`);
        }
      }
      const replacement = admission.refusal !== undefined || bytes === undefined ? emptyBody(contentType) : bytes;
      // Past the limit: a body just over it, so connect-es refuses the size in its own words.
      const oversize = bytes === undefined && admission.refusal === undefined;
      body = (async function* () {
        yield oversize ? new Uint8Array(limit + 6) : replacement;
      })();
    }
    universalResponseToNodeResponse(await handler({ ...universal, body }), response);
  };

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
    const handler = handlers.get(request.url?.split("?", 1)[0] ?? "");
    if (handler === undefined) {
      if (request.url?.startsWith(`/${KVStoreService.typeName}/`)) response.writeHead(404).end();
      else next();
      return;
    }
    answer(handler, request, response).catch((error: unknown) => {
      logger.error({ err: error }, "Connect request failed while answering");
      response.destroy();
    });
  };
}
