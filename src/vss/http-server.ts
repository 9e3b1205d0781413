//! The VSS HTTP listener (`--vss-listen`): POST /vss/getObject, /vss/putObjects,
//! /vss/deleteObject and /vss/listKeyVersions, each with a protobuf request body and a protobuf
//! response body (application/octet-stream).
//!
//! The VSS surface's adapter over the call pipeline (`src/service/`): per request, path, method,
//! admission (before the body is read), the body (up to the gRPC message limit; 413 past it),
//! decoding (400 when it fails), the operation; observed like every call (metrics with
//! `surface="vss"`, the debug line, a span). Every response carries `vss-protocol-version`; every
//! error is an encoded ErrorResponse (500s with a fixed message, their cause logged).

import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { create, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import {
  DeleteObjectRequestSchema,
  DeleteObjectResponseSchema,
  ErrorResponseSchema,
  GetObjectRequestSchema,
  GetObjectResponseSchema,
  ListKeyVersionsRequestSchema,
  ListKeyVersionsResponseSchema,
  PutObjectRequestSchema,
  PutObjectResponseSchema,
} from "../../gen/vss/v1/vss_pb.js";
import type { Authenticate } from "../auth/authenticator.js";
import { OPEN_PRINCIPAL, type Principal } from "../auth/principal.js";
import { parseHostPort } from "../host-port.js";
import { messageLimitBytes, SHUTDOWN_GRACE_MS, type Limits } from "../limits.js";
import type { Logger } from "../log.js";
import { BodyTooLarge, decodeBinary, readBody, TooManyFields } from "../service/body.js";
import { Call, type CallMethod, type CallObserver } from "../service/call.js";
import { httpCredentials, httpHeader } from "../service/http.js";
import { callObserver } from "../service/observe.js";
import { StoreError, type StoreErrorCode } from "../store/errors.js";
import type { CallOptions, KVStore } from "../store/types.js";
import { PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER, toVssError, VSS_PATH_PREFIX, VssError, type VssErrorKind } from "./protocol.js";
import { VssService, vssStoreId } from "./vss-service.js";

export interface VssTlsOptions {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Client certificates signed by it are required (and reach `authenticate`, for `--auth mtls`). */
  readonly ca?: Buffer;
}

export interface VssServerOptions {
  /** `host:port`; port 0 picks a free one. */
  readonly listen: string;
  /** The tiered store (every call goes through an AuthorizedStore for the caller). */
  readonly store: KVStore;
  readonly limits: Limits;
  readonly logger: Logger;
  /** Who calls; open mode (one user, "default", holds every store id) when absent. */
  readonly authenticate?: Authenticate;
  /** Serve HTTPS instead of HTTP. */
  readonly tls?: VssTlsOptions;
  /** Largest request body, in bytes; by default the gRPC message limit of `limits`. */
  readonly maxBodyBytes?: number;
  /**
   * Other routes on the same listener (tierkv's own service over Connect and gRPC-Web): asked
   * first; calls `next` for paths it does not serve.
   */
  readonly otherRoutes?: (request: IncomingMessage, response: ServerResponse, next: () => void) => void;
  /** Told of every call (metrics), after the debug line. */
  readonly observeCall?: CallObserver;
}

export interface RunningVssServer {
  /** `host:port` actually bound. */
  readonly address: string;
  readonly port: number;
  /**
   * Stops accepting connections, lets requests in flight finish (up to `graceMs`, then closes
   * their connections) and resolves when the listener is down. Does not close the store.
   */
  close(graceMs?: number): Promise<void>;
}

interface Route {
  readonly name: string;
  /** The call as metrics and logs name it: service `vss`, method `getObject` … */
  readonly method: CallMethod;
  readonly input: DescMessage;
  readonly output: DescMessage;
  readonly handle: (service: VssService, principal: Principal, request: unknown, options: CallOptions) => Promise<unknown>;
}

function route<I extends DescMessage, O extends DescMessage>(
  name: string,
  input: I,
  output: O,
  handle: (service: VssService, principal: Principal, request: MessageShape<I>, options: CallOptions) => Promise<MessageInitShape<O> | void>,
): Route {
  return { name, method: { service: "vss", name, type: "unary", surface: "vss" }, input, output, handle: handle as Route["handle"] };
}

const ROUTES: ReadonlyMap<string, Route> = new Map(
  [
    route("getObject", GetObjectRequestSchema, GetObjectResponseSchema, (s, p, r, o) => s.getObject(p, r, o)),
    route("putObjects", PutObjectRequestSchema, PutObjectResponseSchema, (s, p, r, o) => s.putObjects(p, r, o)),
    route("deleteObject", DeleteObjectRequestSchema, DeleteObjectResponseSchema, (s, p, r, o) => s.deleteObject(p, r, o)),
    route("listKeyVersions", ListKeyVersionsRequestSchema, ListKeyVersionsResponseSchema, (s, p, r, o) => s.listKeyVersions(p, r, o)),
  ].map((r) => [`${VSS_PATH_PREFIX}/${r.name}`, r]),
);

const OPEN: Authenticate = async () => OPEN_PRINCIPAL;

function pathOf(url: string | undefined): string {
  const end = url?.search(/[?#]/) ?? -1;
  return url === undefined ? "" : end < 0 ? url : url.slice(0, end);
}

/** The store code a VSS answer stands for, for metrics' `grpc_code` (a conflict is a failed precondition). */
const CODE_OF: Record<VssErrorKind, StoreErrorCode> = {
  conflict: "failed-precondition",
  "invalid-request": "invalid-argument",
  "too-large": "resource-exhausted",
  method: "invalid-argument",
  "no-such-key": "not-found",
  auth: "unauthenticated",
  internal: "internal",
};

/** A VSS failure as the pipeline reports it: the store's own error when it caused it. */
function reported(failure: VssError): StoreError {
  if (failure.cause instanceof StoreError) return failure.cause;
  return new StoreError(CODE_OF[failure.kind], failure.message, { cause: failure.cause });
}

/** What a VSS request is about, for the debug line: the internal store it touches and its key. */
function subjectOf(principal: Principal, request: unknown): { store: string; path?: string } {
  const fields = request as { storeId?: unknown; key?: unknown; keyPrefix?: unknown };
  const storeId = typeof fields.storeId === "string" ? fields.storeId : "";
  const key = typeof fields.key === "string" ? fields.key : typeof fields.keyPrefix === "string" ? fields.keyPrefix : undefined;
  return { store: vssStoreId(principal.storeId, storeId), ...(key !== undefined && { path: key.length > 64 ? `${key.slice(0, 64)}…` : key }) };
}

export async function startVssServer(options: VssServerOptions): Promise<RunningVssServer> {
  const { logger } = options;
  const observe = callObserver(logger, options.observeCall);
  const service = new VssService(options.store, options.limits);
  const authenticate = options.authenticate ?? OPEN;
  const maxBody = options.maxBodyBytes ?? messageLimitBytes(options.limits);

  const send = (response: ServerResponse, status: number, body: Uint8Array, extra: Record<string, string> = {}): void => {
    if (response.headersSent) {
      response.destroy();
      return;
    }
    response.writeHead(status, {
      [PROTOCOL_VERSION_HEADER]: PROTOCOL_VERSION,
      "content-type": "application/octet-stream",
      "content-length": String(body.byteLength),
      ...extra,
    });
    response.end(body);
  };

  const fail = (request: IncomingMessage, response: ServerResponse, failure: VssError, bodyRead: boolean): void => {
    const body = toBinary(ErrorResponseSchema, create(ErrorResponseSchema, { errorCode: failure.code, message: failure.publicMessage }));
    const extra: Record<string, string> = failure.kind === "method" ? { allow: "POST" } : {};
    // An answer before the body was read ends the connection: the rest of the body is not read.
    if (!bodyRead && !request.complete) extra["connection"] = "close";
    send(response, failure.status, body, extra);
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = pathOf(request.url);
    const target = ROUTES.get(path);
    // An unknown path is no call (and no metric label): answered at once.
    if (target === undefined) return fail(request, response, new VssError("invalid-request", "Invalid request path."), false);
    const call = new Call(target.method, observe, httpHeader(request));
    let bodyRead = false;
    // The caller went away before its answer: waits for the store end early.
    response.once("close", () => {
      if (!response.writableFinished) call.cancel(() => new StoreError("unavailable", "the caller went away"));
    });
    try {
      if (request.method !== "POST") throw new VssError("method", `${target.name} takes POST, not ${request.method}`);
      const principal = await call.admit(authenticate, httpCredentials(request));
      let body: Buffer;
      try {
        body = await readBody(request, maxBody);
      } catch (error) {
        throw error instanceof BodyTooLarge ? new VssError("too-large", error.message) : error;
      }
      bodyRead = true;
      let message: unknown;
      try {
        message = decodeBinary(target.input, body, options.limits);
      } catch (error) {
        // vss-server's answer to a body that does not parse; too many fields say how to fix it.
        throw error instanceof TooManyFields ? toVssError(error) : new VssError("invalid-request", "Error parsing request");
      }
      call.about(() => subjectOf(principal, message));
      const answer = await call.run(() => target.handle(service, principal, message, { signal: call.signal }));
      call.end();
      send(response, 200, toBinary(target.output, create(target.output, (answer ?? {}) as MessageInitShape<DescMessage>)));
    } catch (error) {
      const failure = toVssError(error);
      call.end(reported(failure));
      fail(request, response, failure, bodyRead);
    }
  };

  const answerVss = (request: IncomingMessage, response: ServerResponse): void => {
    handle(request, response).catch((error: unknown) => {
      logger.error({ err: error }, "VSS request failed while answering");
      response.destroy();
    });
  };
  const { otherRoutes } = options;
  const listener = otherRoutes
    ? (request: IncomingMessage, response: ServerResponse): void => otherRoutes(request, response, () => answerVss(request, response))
    : answerVss;

  const tls = options.tls;
  const server: Server = tls
    ? createHttpsServer({ cert: tls.cert, key: tls.key, ...(tls.ca !== undefined && { ca: tls.ca, requestCert: true, rejectUnauthorized: true }) }, listener)
    : createHttpServer(listener);
  const { host, port: requestedPort } = parseHostPort(options.listen, "--vss-listen");
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(requestedPort, host.replace(/^\[(.*)\]$/, "$1"), () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (error) => logger.error({ err: error }, "VSS listener error"));
  const port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  const close = (graceMs = SHUTDOWN_GRACE_MS): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        logger.warn({ graceMs }, "VSS requests did not finish in time; closing their connections");
        server.closeAllConnections();
      }, graceMs);
      force.unref();
      server.close(() => {
        clearTimeout(force);
        resolve();
      });
      server.closeIdleConnections();
    });
    return closing;
  };
  return { address: `${host}:${port}`, port, close };
}
