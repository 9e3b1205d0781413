//! KVStoreService over the Connect protocol (JSON and binary) and gRPC-Web, for `curl` and
//! browser wallets, with `@connectrpc/connect-node`: the same handlers, authentication, limits
//! and error table as the gRPC port; a thin translation, no storage logic of its own.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { DescMessage } from "@bufbuild/protobuf";
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
import { decodeBinary, decodeJson, decompress, readBody } from "../service/body.js";
import { Call, cancellationOf, subjectOf, type CallMethod, type CallObserver, type Surface } from "../service/call.js";
import { httpCredentials, httpHeader } from "../service/http.js";
import { callObserver } from "../service/observe.js";
import { invalidArgument, StoreError } from "../store/errors.js";
import type { KVStore } from "../store/types.js";
import type { ChangeFeed } from "../watch/change-feed.js";
import { kvStoreService } from "./kvstore-service.js";

export interface ConnectServiceOptions {
  readonly store: KVStore;
  readonly limits: Limits;
  readonly authenticate: Authenticate;
  readonly logger: Logger;
  /** Origins browsers may call from (`*` for any); none: no CORS headers. */
  readonly corsOrigins: readonly string[];
  /** Told of every call (metrics), after the debug line. */
  readonly observeCall?: CallObserver;
  /** Serves Watch (server streaming) from the primary's change log. */
  readonly feed?: ChangeFeed;
}

export type HttpHandler = (request: IncomingMessage, response: ServerResponse, next: () => void) => void;

/** The Connect error for a call's StoreError: the status table of the gRPC port (same codes). */
function toConnectError(error: StoreError): ConnectError {
  const status = toGrpcStatus(error);
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
 * What the pipeline settled before connect-es sees the call: the admitted call and its decoded
 * request, or why it is refused. connect-es then gets an empty message in the caller's framing,
 * and the handler answers from this, in the caller's protocol.
 */
interface Admission {
  readonly call: Call;
  readonly request?: unknown;
  readonly refusal?: StoreError;
}
const ADMISSION = createContextKey<Admission | undefined>(undefined, { description: "tierkv admission" });

const GRPC_WEB = /^application\/grpc-web/i;
/** Connect's streaming requests (Watch) frame their one message in an envelope, as gRPC-Web does. */
const ENVELOPED = /^application\/(grpc-web|connect\+)/i;
const JSON_BODY = /^application\/(grpc-web\+|connect\+)?json(;|$)/i;

const TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** The deadline a Connect (`connect-timeout-ms`) or gRPC-Web (`grpc-timeout`) request sets. */
function deadlineOf(request: IncomingMessage): number | undefined {
  const connect = Number(request.headers["connect-timeout-ms"]);
  if (Number.isFinite(connect) && connect > 0) return Date.now() + connect;
  const match = /^(\d{1,8})([HMSmun])$/.exec(String(request.headers["grpc-timeout"] ?? ""));
  return match === null ? undefined : Date.now() + Number(match[1]) * TIMEOUT_UNITS[match[2]!]!;
}

/** An empty message in the body's framing: what connect-es parses in place of the real body. */
function emptyBody(contentType: string): Uint8Array {
  const json = JSON_BODY.test(contentType);
  if (!ENVELOPED.test(contentType)) return json ? new TextEncoder().encode("{}") : new Uint8Array(0);
  return json ? new Uint8Array([0, 0, 0, 0, 2, 0x7b, 0x7d]) : new Uint8Array(5);
}

/**
 * The message bytes of a body, decompressed: Connect's whole body (`content-encoding`), or the
 * first envelope's data of a gRPC-Web or Connect streaming body (compressed when its flag says
 * so, by `grpc-encoding` or `connect-content-encoding`).
 */
async function messageOf(request: IncomingMessage, body: Buffer, limit: number): Promise<Uint8Array> {
  const contentType = request.headers["content-type"] ?? "";
  if (!ENVELOPED.test(contentType)) return decompress(body, request.headers["content-encoding"], limit);
  if (body.byteLength < 5) throw invalidArgument("the enveloped body holds no message");
  const length = body.readUInt32BE(1);
  if (body.byteLength < 5 + length) throw invalidArgument("the enveloped message is shorter than its envelope says");
  const data = body.subarray(5, 5 + length);
  const encoding = request.headers[GRPC_WEB.test(contentType) ? "grpc-encoding" : "connect-content-encoding"];
  return (body[0]! & 0b1) !== 0 ? decompress(data, typeof encoding === "string" ? encoding : "gzip", limit) : data;
}

/**
 * An HTTP handler serving `/tierkv.v1.KVStoreService/*` over Connect and gRPC-Web; other paths go
 * to `next` (the VSS routes share the listener). Each call runs through the pipeline: admitted
 * from its headers and TLS peer before its body is read (a refused call's body is never read),
 * its body read up to the gRPC message limit (measured after decompression), decoded with
 * bounded effort, then handed to the gRPC port's handlers; connect-es only frames the answer.
 */
export function connectService(options: ConnectServiceOptions): HttpHandler {
  const { logger } = options;
  const observe = callObserver(logger, options.observeCall);
  const impl = kvStoreService(options.store, options.limits, options.feed);
  const limit = messageLimitBytes(options.limits);

  /** Runs one of the gRPC port's handlers for an admitted call, in its span; ends the call. */
  const run = async <Request, Response>(context: ConnectContext, handler: (request: Request, context: HandlerContext) => Promise<Response>): Promise<Response> => {
    const admission = context.values.get(ADMISSION);
    if (admission === undefined) throw new ConnectError("the call was not admitted", Code.Internal);
    const { call } = admission;
    context.signal.addEventListener("abort", () => call.cancel(() => cancellationOf(call.deadline)), { once: true });
    let response: Response;
    try {
      if (admission.refusal !== undefined) throw admission.refusal;
      response = await call.run(() => handler(admission.request as Request, call));
    } catch (error) {
      throw toConnectError(call.end(error)!);
    }
    call.end();
    return response;
  };
  /** `run` for a server-streaming handler: each response is written as connect-es pulls it. */
  const stream = async function* <Request, Response>(
    context: ConnectContext,
    handler: (request: Request, context: HandlerContext) => AsyncIterable<Response>,
  ): AsyncGenerator<Response> {
    const admission = context.values.get(ADMISSION);
    if (admission === undefined) throw new ConnectError("the call was not admitted", Code.Internal);
    const { call } = admission;
    context.signal.addEventListener("abort", () => call.cancel(() => cancellationOf(call.deadline)), { once: true });
    let responses: AsyncIterator<Response> | undefined;
    try {
      if (admission.refusal !== undefined) throw admission.refusal;
      // The span covers the handler's start; the stream's later pulls run outside it.
      responses = await call.run(async () => handler(admission.request as Request, call)[Symbol.asyncIterator]());
      for (let next = await responses.next(); !next.done && !call.cancelled; next = await responses.next()) yield next.value;
    } catch (error) {
      throw toConnectError(call.end(error)!);
    } finally {
      // Also when connect-es stops pulling (the caller went away): the handler's own finally runs.
      await responses?.return?.();
      call.end();
    }
  };
  // Bodies reach connect-es already read, decompressed and checked: an empty message.
  const router = createConnectRouter({ readMaxBytes: limit, writeMaxBytes: limit, acceptCompression: [compressionGzip, compressionBrotli] });
  router.service(KVStoreService, {
    read: (_request, context) => run(context, impl.read),
    write: (_request, context) => run(context, impl.write),
    remove: (_request, context) => run(context, impl.remove),
    list: (_request, context) => run(context, impl.list),
    listPage: (_request, context) => run(context, impl.listPage),
    listAllKeys: (_request, context) => run(context, impl.listAllKeys),
    mutate: (_request, context) => run(context, impl.mutate),
    txn: (_request, context) => run(context, impl.txn),
    watch: (_request, context) => stream(context, impl.watch),
  });
  const handlers = new Map(router.handlers.map((handler) => [handler.requestPath, handler]));
  /** One CallMethod per surface and method, for metrics' children. */
  const methods = new Map<string, CallMethod>();
  const methodOf = (input: { name: string; methodKind: string }, surface: Surface): CallMethod => {
    const key = `${surface} ${input.name}`;
    let method = methods.get(key);
    if (method === undefined) {
      method = { service: KVStoreService.typeName, name: input.name, type: input.methodKind === "server_streaming" ? "server_stream" : "unary", surface };
      methods.set(key, method);
    }
    return method;
  };

  /** Admits, reads and decodes the request, then lets connect-es answer in the caller's protocol. */
  const answer = async (handler: UniversalHandler, request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const contentType = request.headers["content-type"] ?? "";
    const surface: Surface = GRPC_WEB.test(contentType) ? "grpc-web" : "connect";
    const call = new Call(methodOf(handler.method, surface), observe, httpHeader(request), deadlineOf(request));
    response.once("close", () => {
      if (!response.writableFinished) call.cancel(() => cancellationOf(call.deadline));
      // Answered, and not by our handler: connect-es refused the call itself (an unknown content
      // type, a bad protocol header). Reported here, not after universalResponseToNodeResponse:
      // on HTTP/1.1 its promise never settles (connect-node 2.1.1
      // dist/esm/node-universal-handler.js:147 waits for an "end" event that Node's
      // ServerResponse does not emit; it emits "finish" and "close").
      else if (!call.ended) call.end(new StoreError("invalid-argument", "refused by the Connect protocol layer"));
    });
    let admission: Admission;
    try {
      // Who calls is settled from the headers and the TLS peer alone: a refused body is never read.
      const principal = await call.admit(options.authenticate, httpCredentials(request));
      const input: DescMessage = handler.method.input;
      const body = await readBody(request, limit + 5);
      const bytes = await messageOf(request, body, limit);
      const decoded = JSON_BODY.test(contentType) ? decodeJson(input, bytes, options.limits) : decodeBinary(input, bytes, options.limits);
      call.about(() => subjectOf(principal, decoded));
      admission = { call, request: decoded };
    } catch (error) {
      admission = { call, refusal: StoreError.from(error) };
      // The rest of an unread body is not read: the connection ends with the answer.
      if (!request.complete) response.setHeader("connection", "close");
    }
    const universal = universalRequestFromNodeRequest(request, response, undefined, createContextValues().set(ADMISSION, admission));
    // The request's own headers (a copy made for this request): the body handed on is neither
    // compressed nor of the length they say.
    const { header } = universal;
    header.delete("content-encoding");
    header.delete("grpc-encoding");
    header.delete("connect-content-encoding");
    header.delete("content-length");
    const empty = emptyBody(contentType);
    const body = (async function* () {
      yield empty;
    })();
    try {
      await universalResponseToNodeResponse(await handler({ ...universal, body }), response);
    } catch (error) {
      // connect-es failed, or the answer could not be written: the call is reported as failed.
      if (!call.ended) call.end(error);
      throw error;
    }
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
